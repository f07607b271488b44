"""isthmus-init: PID 1 of an application container's own PID and mount namespaces.

`unshare --pid --fork --kill-child --mount --propagation private --mount-proc` starts it
(see runtime.isolation), so it runs as root, with every capability, as PID 1 of a fresh
PID namespace whose /proc shows only its processes, in a mount namespace that shares
nothing back with the host. It then:

1. hides isthmus's state: an empty read-only tmpfs over the mesh home (CA key, database,
   sockets, logs) and /run/isthmus (sidecar work dirs and tokens, shim sockets), so no
   path leads to them; only an addon's own directory (runtime.addons), opened before the
   hiding, is bound (nosuid, nodev, noexec) on a mount point inside such a tmpfs;
2. unless the container is privileged, gives it what a container runtime gives every
   container: device nodes work only in a fresh minimal /dev (null, zero, full, random,
   urandom, tty, a private /dev/shm and devpts), so neither the host's disks nor a node
   made with CAP_MKNOD can be opened; /sys read-only; runc's masked and read-only /proc
   paths (sysrq-trigger, /proc/sys, kcore...); and `/` read-only for
   readOnlyRootFilesystem;
3. starts the application (through `setpriv`, which drops the capabilities, the user and
   sets no_new_privs, as runtime.isolation built it) in a session of its own, and stays
   its init: it forwards SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 to the
   application's process group, reaps orphans, and exits with the application's status
   (128 + signal when it was killed).

Why an init rather than the application as PID 1: the kernel ignores a signal sent to a
namespace's PID 1 unless PID 1 handles it, so an application without a SIGTERM handler
would never stop gracefully, and nothing would reap the orphans it leaves. Nothing
outlives this process: when it exits or is killed, the kernel kills everything in its
PID namespace, and it dies with its `unshare` parent (--kill-child sets its parent-death
signal, which it keeps because it never changes credentials).

It is run as `python -I -S podinit.py NAME SPEC`, standard library only (no site, no
isthmus import), to stay small: one runs per application container. SPEC is the
container's plan as base64 JSON, so the parent's command line does not repeat the
application's (tools that find a process by its command line find the application).
"""

import base64
import contextlib
import ctypes
import json
import os
import signal
import stat
import sys
from collections.abc import Sequence

FORWARDED = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_BIND = 0x1000
MS_REC = 0x4000
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
SYS_MOUNT_SETATTR = 442  # the same number on every architecture (Linux >= 5.12)

# runc's defaults (what containerd gives a Kubernetes container that is not privileged).
MASKED_PATHS = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
READONLY_PATHS = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)
# name: (major, minor); all 0666 as in every container runtime.
DEVICES = {
    "null": (1, 3),
    "zero": (1, 5),
    "full": (1, 7),
    "random": (1, 8),
    "urandom": (1, 9),
    "tty": (5, 0),
}
DEV_LINKS = {
    "fd": "/proc/self/fd",
    "stdin": "/proc/self/fd/0",
    "stdout": "/proc/self/fd/1",
    "stderr": "/proc/self/fd/2",
    "ptmx": "pts/ptmx",
}


class InitError(Exception):
    """The container can not be set up as asked; the message goes to its log."""


class _MountAttr(ctypes.Structure):
    _fields_ = (
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    )


_libc = ctypes.CDLL(None, use_errno=True)


def _fail(what: str, path: str) -> InitError:
    errno = ctypes.get_errno()
    return InitError(f"{what} {path}: {os.strerror(errno)}")


def mount(source: str, target: str, fstype: str, flags: int, data: str = "") -> None:
    if (
        _libc.mount(
            source.encode(), target.encode(), fstype.encode(), ctypes.c_ulong(flags), data.encode()
        )
        != 0
    ):
        raise _fail(f"mount {fstype or source} on", target)


def set_attributes(path: str, add: int, clear: int = 0, recursive: bool = False) -> None:
    """mount_setattr(2): change the flags of the mount at `path` (and every mount below it
    with `recursive`) in one call, keeping its other flags."""
    attr = _MountAttr(add, clear, 0, 0)
    flags = AT_RECURSIVE if recursive else 0
    result = _libc.syscall(
        SYS_MOUNT_SETATTR,
        AT_FDCWD,
        path.encode(),
        ctypes.c_uint(flags),
        ctypes.byref(attr),
        ctypes.c_size_t(ctypes.sizeof(attr)),
    )
    if result != 0:
        raise _fail("mount_setattr", path)


def outermost(paths: list[str]) -> list[str]:
    """The paths that exist and are not inside another of them (hiding a directory hides
    what is below it, and a hidden directory's subdirectories are gone)."""
    kept: list[str] = []
    for path in sorted({os.path.normpath(p) for p in paths}):
        if path == "/" or not os.path.isdir(path):
            continue
        if not any(path == k or path.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(path)
    return kept


def cover(path: str) -> None:
    """An empty read-only directory over `path`: what was below it is out of reach."""
    mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=755")


def _inside(path: str, directory: str) -> bool:
    return path.startswith(directory.rstrip("/") + "/")


def open_exposed(exposed: list[list[str]]) -> list[tuple[int, str]]:
    """A handle on each directory to expose (source, target), taken while the host's view
    is still there: O_PATH and O_NOFOLLOW, so a symbolic link is refused, not followed."""
    handles = []
    for source, target in exposed:
        fd = os.open(source, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        handles.append((fd, os.path.normpath(target)))
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            raise InitError(f"expose {source}: not a directory")
    return handles


def hide(paths: list[str], exposed: Sequence[tuple[int, str]] = ()) -> None:
    """Cover each path; bind each exposed handle on its target, which must be inside a
    covered path (its mount point is made on the covering tmpfs, never on the host)."""
    covered = outermost(paths)
    for _, target in exposed:
        if not any(_inside(target, path) for path in covered):
            raise InitError(f"expose {target}: not inside a hidden directory")
    for path in covered:
        mine = [(fd, target) for fd, target in exposed if _inside(target, path)]
        if not mine:
            cover(path)
            continue
        mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=755")
        for fd, target in mine:
            os.makedirs(target, mode=0o755, exist_ok=True)
            mount(f"/proc/self/fd/{fd}", target, "", MS_BIND)
            set_attributes(target, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC)
        set_attributes(path, MOUNT_ATTR_RDONLY)


def make_dev() -> None:
    """A fresh /dev with only the devices every container has; read-only, so no device
    node can be added to it (CAP_MKNOD makes nodes, nodev everywhere else stops them)."""
    mount("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=64k")
    old = os.umask(0)
    try:
        for name, (major, minor) in DEVICES.items():
            os.mknod(f"/dev/{name}", stat.S_IFCHR | 0o666, os.makedev(major, minor))
        for name, target in DEV_LINKS.items():
            os.symlink(target, f"/dev/{name}")
        os.mkdir("/dev/shm", 0o1777)
        os.mkdir("/dev/pts", 0o755)
    finally:
        os.umask(old)
    mount("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=64m")
    mount(
        "devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620"
    )
    set_attributes("/dev", MOUNT_ATTR_RDONLY)


def mask_proc_and_sys() -> None:
    for path in MASKED_PATHS:
        if os.path.isdir(path):
            cover(path)
        elif os.path.exists(path):
            mount("/dev/null", path, "", MS_BIND)
    for path in READONLY_PATHS:
        if os.path.exists(path):
            mount(path, path, "", MS_BIND | MS_REC)
            set_attributes(path, MOUNT_ATTR_RDONLY, recursive=True)
    set_attributes("/sys", MOUNT_ATTR_RDONLY, recursive=True)


def read_only_root(writable: list[str]) -> None:
    """readOnlyRootFilesystem: every mount read-only but /proc, /dev/shm and /dev/pts,
    which a container runtime mounts writable beside a read-only root, and the exposed
    directories (as volumes are)."""
    set_attributes("/", MOUNT_ATTR_RDONLY, recursive=True)
    for path in ("/proc", "/dev/shm", "/dev/pts", *writable):
        set_attributes(path, 0, MOUNT_ATTR_RDONLY)


def prepare(plan: dict[str, object]) -> None:
    """Every mount of the container's view, in an order where each step's needs (the
    host's files, device nodes) are still there when it runs."""
    hidden = plan.get("hide", [])
    exposed = plan.get("expose", [])
    handles = open_exposed(
        [[str(s), str(t)] for s, t in exposed] if isinstance(exposed, list) else []
    )
    try:
        hide([str(p) for p in hidden] if isinstance(hidden, list) else [], handles)
    finally:
        for fd, _ in handles:
            os.close(fd)
    if not plan.get("privileged"):
        set_attributes("/", MOUNT_ATTR_NODEV, recursive=True)
        make_dev()
        mask_proc_and_sys()
    if plan.get("readOnlyRoot"):
        read_only_root([target for _, target in handles])


def exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)


def start(argv: list[str], cwd: str) -> int:
    """Fork the application: its own session (its process group is what signals go to),
    default signal dispositions (Python ignores SIGPIPE and SIGXFSZ, and exec keeps
    ignored signals) and mask, then exec `argv` (setpriv, which execs the application)."""
    pid = os.fork()
    if pid:
        return pid
    try:
        for sig in (*FORWARDED, signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        os.setsid()
        os.chdir(cwd)
        os.execv(argv[0], argv)
    except OSError as exc:
        print(f"isthmus-init: can not run {argv[0]} in {cwd}: {exc}", file=sys.stderr)
    os._exit(127)


def supervise(argv: list[str], cwd: str) -> int:
    """Start the application, forward signals to it, reap every child; the application's
    exit status once it is gone.

    The forwarded signals are blocked from the start of main (a blocked signal is kept
    for PID 1, an unhandled one is dropped), so a SIGTERM that came while the container
    was being set up reaches the application as soon as it runs."""
    app = start(argv, cwd)

    def forward(sig: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(app, sig)

    for sig in FORWARDED:
        signal.signal(sig, forward)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:  # not possible while the application runs
            return 1
        if pid == app:
            return exit_code(status)


def read_plan(spec: str) -> tuple[dict[str, object], list[str], str]:
    """The plan (base64 JSON), the command to exec and the working directory."""
    plan = json.loads(base64.urlsafe_b64decode(spec))
    if not isinstance(plan, dict) or not isinstance(plan.get("exec"), list):
        raise ValueError("the plan must be a JSON object with an exec list")
    return plan, [str(arg) for arg in plan["exec"]], str(plan.get("cwd") or "/")


def main(args: list[str]) -> int:
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
    if len(args) != 2:
        print("usage: podinit.py NAME PLAN", file=sys.stderr)
        return 2
    name, spec = args
    try:
        plan, argv, cwd = read_plan(spec)
        prepare(plan)
    except (InitError, ValueError, OSError) as exc:
        print(f"isthmus-init: container {name}: {exc}", file=sys.stderr)
        return 1
    return supervise(argv, cwd)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
