"""What the kernel says about the processes of a pod: which are Envoy or the agent, their
CPU seconds and their resident memory.

CPU is utime+stime of the whole process (every thread) from /proc/PID/stat, so a proxy's
share is counted exactly, whatever else runs on the machine at the same time.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def netns_pids(netns: str) -> list[int]:
    """Every process inside network namespace `netns` (`ip netns pids`)."""
    out = subprocess.run(
        ["ip", "netns", "pids", netns], capture_output=True, text=True, check=True, timeout=10
    ).stdout
    return [int(p) for p in out.split()]


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def role(pid: int) -> str:
    """'envoy', 'agent' or 'other', from the process's argv."""
    argv = cmdline(pid)
    if not argv:
        return "other"
    if Path(argv[0]).name == "envoy":
        return "envoy"
    if "isthmus.agent" in argv:
        return "agent"
    return "other"


def shim_pid(pod_key: str) -> int | None:
    """The pod's shim (it lives in the root namespace, not the pod's): by its argv."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            argv = cmdline(int(entry.name))
            if "isthmus.runtime.shim" in argv and pod_key in argv:
                return int(entry.name)
    return None


def pids_by_role(netns: str, wanted: str) -> list[int]:
    return [pid for pid in netns_pids(netns) if role(pid) == wanted]


@dataclass(frozen=True)
class Cpu:
    """CPU seconds: user and kernel (the kernel part holds the network stack's work done
    in the process's own system calls, iptables and conntrack included)."""

    user: float = 0.0
    system: float = 0.0

    @property
    def total(self) -> float:
        return self.user + self.system

    def __add__(self, other: Cpu) -> Cpu:
        return Cpu(self.user + other.user, self.system + other.system)

    def __sub__(self, other: Cpu) -> Cpu:
        return Cpu(self.user - other.user, self.system - other.system)


def cpu(pid: int) -> Cpu:
    """utime and stime of `pid` (all its threads)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    fields = stat[stat.rindex(")") + 2 :].split()
    return Cpu(int(fields[11]) / _TICKS, int(fields[12]) / _TICKS)


def total_cpu(pids: list[int]) -> Cpu:
    result = Cpu()
    for pid in pids:
        result = result + cpu(pid)
    return result


def renice(pids: list[int], niceness: int) -> None:
    """Set the nice value of every thread of `pids` (Linux keeps it per thread, and Envoy's
    workers are threads). Processes that exited meanwhile are skipped."""
    for pid in pids:
        try:
            tids = [int(t.name) for t in Path(f"/proc/{pid}/task").iterdir()]
        except OSError:
            continue
        for tid in tids:
            with contextlib.suppress(ProcessLookupError):
                os.setpriority(os.PRIO_PROCESS, tid, niceness)
