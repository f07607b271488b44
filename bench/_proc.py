"""What the kernel says about a process: CPU seconds and memory, read from /proc.

CPU is utime+stime of the process (all its threads) from /proc/PID/stat, so it counts
exactly the server's work, never the clients' that share the machine.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


@dataclass(frozen=True)
class Memory:
    rss_mib: float  # VmRSS: resident now
    hwm_mib: float  # VmHWM: peak resident since the process started


def memory(pid: int) -> Memory:
    values: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024  # kB -> MiB
    return Memory(rss_mib=values["VmRSS"], hwm_mib=values["VmHWM"])


def machine_facts() -> dict[str, str]:
    """nproc, RAM, CPU model, kernel and the versions the numbers depend on."""
    import google.protobuf
    import grpc
    from google.protobuf.internal import api_implementation

    meminfo = Path("/proc/meminfo").read_text()
    total_kib = int(re.search(r"MemTotal:\s+(\d+)", meminfo).group(1))  # type: ignore[union-attr]
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    envoy = Path(sys.executable).with_name("envoy")
    envoy_version = "not found"
    if envoy.exists():
        out = subprocess.run([envoy, "--version"], capture_output=True, text=True, timeout=30)
        match = re.search(r"version: \S+?/(\d+\.\d+\.\d+)", out.stdout)
        envoy_version = match.group(1) if match else out.stdout.strip()
    return {
        "isthmus": _commit(),
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "ram": f"{total_kib / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "protobuf": f"{google.protobuf.__version__} ({api_implementation.Type()})",
        "envoy": f"{envoy_version} (not used: fake ADS clients)",
    }


def _commit() -> str:
    """The checkout's commit, marked `+dirty` if src/ has uncommitted changes."""
    repo = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}+dirty" if dirty else head


class Profiler:
    """`py-spy record` of one process, stopped with SIGINT so it writes its output."""

    def __init__(self, pid: int, output: Path, rate: int = 100) -> None:
        exe = Path(sys.executable).with_name("py-spy")
        found = str(exe) if exe.exists() else shutil.which("py-spy")
        if found is None:
            raise RuntimeError("py-spy is not installed: .venv/bin/pip install py-spy")
        self.output = output
        self._process = subprocess.Popen(
            [
                found,
                "record",
                "--pid",
                str(pid),
                "--rate",
                str(rate),
                "--nonblocking",
                "--format",
                "raw",
                "--output",
                str(output),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def stop(self, timeout: float = 60.0) -> str:
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
        try:
            _, err = self._process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            _, err = self._process.communicate()
        return err.decode(errors="replace")
