"""An addon's own directory: the one part of the mesh home an application container may see.

Every application container has the mesh home and /run/isthmus hidden behind an empty
read-only tmpfs (runtime.isolation, podinit). An addon that isthmus runs as a pod (the
Prometheus of `isthmus up --with prometheus`) needs its configuration, the scrape targets
isthmusd keeps current, and a place for its data. So a pod annotated
`isthmus.io/addon: NAME` gets exactly `$ISTHMUS_HOME/addons/NAME`, read-write, at
ADDON_MOUNT (`/run/isthmus/addon`, inside the hidden /run/isthmus, so the mount point is
made on the container's private tmpfs and its path does not depend on where the home is).
Nothing else of the home becomes visible: the CA, tokens, database and sockets stay hidden.

Who gets it, checked here before the container starts (a refusal is the container's
CreateContainerConfigError):
- only pods in the mesh's root namespace (istio-system by default), where Istio keeps its
  control plane and addons; the annotation anywhere else refuses the container, so a
  user's pod in an application namespace can not ask for an addon's directory;
- NAME is a DNS label (no `/`, no `..`): the directory is always a direct child of
  `$ISTHMUS_HOME/addons`, never another part of the home;
- `addons` and `addons/NAME` must be real directories (not symbolic links) owned by root,
  made by `isthmus up --with NAME`; a missing one refuses the container rather than
  making it.

podinit opens the directory (O_PATH, O_NOFOLLOW) before it hides the home, and binds
that handle, with nosuid, nodev and noexec, on a mount point it makes inside the
container's hidden tmpfs, which it then makes read-only again.

The host side writes into that directory as root while the addon's pod may change what is
in it, so it never follows a path there: `write_file` and `make_directory` walk from the
home one component at a time with O_NOFOLLOW (a symbolic link planted by the pod is
refused, not followed), create files with O_EXCL and rename them into place within the
same directory handle.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path

from isthmus.runtime.security_context import ContainerConfigError

ADDON_ANNOTATION = "isthmus.io/addon"
ADDONS_DIR = "addons"  # under the mesh home
ADDON_MOUNT = Path("/run/isthmus/addon")  # where the container sees its addon's directory
_NAME = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")


def addon_home(state_dir: Path, name: str) -> Path:
    """`$ISTHMUS_HOME/addons/NAME` (NAME must be valid: see addon_mount)."""
    return state_dir / ADDONS_DIR / name


def _real_root_directory(path: Path) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise ContainerConfigError(
            f"addon directory {path} does not exist (made by `isthmus up --with`)"
        ) from None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0:
        raise ContainerConfigError(f"{path} is not a directory owned by root")


def addon_mount(
    state_dir: Path, root_namespace: str, namespace: str, annotations: Mapping[str, str]
) -> tuple[Path, Path] | None:
    """(host directory, container path) for a pod that asks for its addon's directory, or
    None; raises ContainerConfigError when the pod may not have it (module docstring)."""
    name = annotations.get(ADDON_ANNOTATION)
    if name is None:
        return None
    if namespace != root_namespace:
        raise ContainerConfigError(
            f"annotation {ADDON_ANNOTATION} is honoured only in the root namespace "
            f"{root_namespace}, not in {namespace}"
        )
    if not _NAME.fullmatch(name):
        raise ContainerConfigError(
            f"annotation {ADDON_ANNOTATION}: {name!r} is not an addon name (a DNS label)"
        )
    _real_root_directory(state_dir / ADDONS_DIR)
    source = addon_home(state_dir, name)
    _real_root_directory(source)
    return source, ADDON_MOUNT


@contextlib.contextmanager
def _directory(state_dir: Path, name: str, parts: tuple[str, ...]) -> Iterator[int]:
    """A handle on `$ISTHMUS_HOME/addons/NAME/PARTS...`, made (0755) where missing, each
    component opened with O_NOFOLLOW relative to the one before."""
    if not _NAME.fullmatch(name) or any(p in ("", ".", "..") or "/" in p for p in parts):
        raise ValueError(f"not an addon path: {name}/{'/'.join(parts)}")
    fd = os.open(state_dir, os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in (ADDONS_DIR, name, *parts):
            try:
                os.mkdir(part, 0o755, dir_fd=fd)
                made = True
            except FileExistsError:
                made = False
            child = os.open(part, os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = child
            if made:
                os.fchmod(fd, 0o755)  # whatever the umask: the addon's user reads it
        yield fd
    finally:
        os.close(fd)


def make_directory(
    state_dir: Path, name: str, *parts: str, owner: int = 0, mode: int = 0o755
) -> Path:
    """`$ISTHMUS_HOME/addons/NAME/PARTS...`, made where missing; the last one gets `owner`
    (uid and gid) and `mode`."""
    with _directory(state_dir, name, parts) as fd:
        os.fchown(fd, owner, owner)
        os.fchmod(fd, mode)
    return addon_home(state_dir, name).joinpath(*parts)


def write_file(state_dir: Path, name: str, relative: str, data: bytes) -> Path:
    """Replace `$ISTHMUS_HOME/addons/NAME/RELATIVE` (root, 0644) with `data` atomically:
    a reader sees the old file or the new one, never a part."""
    *parts, filename = relative.split("/")
    with _directory(state_dir, name, tuple(parts)) as fd:
        temporary = f".{filename}.{secrets.token_hex(4)}.tmp"
        out = os.open(
            temporary,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o644,
            dir_fd=fd,
        )
        try:
            with os.fdopen(out, "wb") as stream:
                stream.write(data)
                os.fchmod(stream.fileno(), 0o644)
            os.replace(temporary, filename, src_dir_fd=fd, dst_dir_fd=fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=fd)
            raise
    return addon_home(state_dir, name) / relative
