"""Totals of one scenario in one phase, summed over its rounds: merged latencies (nearest-
rank percentiles over every recorded request, not an average of per-round percentiles),
request counts and the CPU seconds of each group of processes in the measured windows."""

from __future__ import annotations

import array
import os
from dataclasses import dataclass, field
from pathlib import Path

from _dp_native import LoadResult
from _dp_proc import Cpu

_TICKS = os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy since boot (all cores; /proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in fields[:8]]  # user nice system idle iowait irq softirq steal
    return (sum(values) - values[3] - values[4]) / _TICKS


def nearest_rank(sorted_values: list[int], q: float) -> int:
    if not sorted_values:
        raise ValueError("no values")
    rank = max(1, -(-len(sorted_values) * q // 1))  # ceil(n*q), at least 1
    return sorted_values[int(rank) - 1]


@dataclass
class PhaseTotals:
    latencies: list[array.array[int]] = field(default_factory=list)
    recorded: int = 0
    sent: int = 0
    ok: int = 0
    errors: int = 0
    missed: int = 0
    connects: int = 0
    seconds: float = 0.0
    loadgen_cpu: float = 0.0
    machine_busy: float = 0.0
    late_samples: int = 0  # generator wake-ups on idle connections (see dp load)
    late_over_1ms: int = 0
    late_max_ms: float = 0.0
    cpu: dict[str, Cpu] = field(default_factory=dict)  # group -> CPU seconds
    windows: list[tuple[float, float]] = field(default_factory=list)  # wall clock, measured
    # --syscalls: group -> syscall -> count, and the requests served while perf counted
    syscalls: dict[str, dict[str, int]] = field(default_factory=dict)
    syscall_requests: dict[str, float] = field(default_factory=dict)
    _sorted: list[int] | None = None

    def add(
        self,
        result: LoadResult,
        cpu: dict[str, Cpu],
        machine_busy: float,
        window: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        self.windows.append(window)
        self.latencies.append(result.latencies_ns)
        self.recorded += len(result.latencies_ns)
        self.sent += result.count("sent")
        self.ok += result.ok
        self.errors += result.count("errors")
        self.missed += result.count("missed")
        self.connects += result.count("connects")
        self.seconds += result.measured_seconds
        value = result.summary.get("cpu_seconds", 0.0)
        self.loadgen_cpu += float(value) if isinstance(value, int | float) else 0.0
        self.machine_busy += machine_busy
        late = result.summary.get("late", {})
        if isinstance(late, dict):
            self.late_samples += int(late.get("samples", 0))
            self.late_over_1ms += int(late.get("over_1ms", 0))
            self.late_max_ms = max(self.late_max_ms, float(late.get("max_ms", 0.0)))
        for group, seconds in cpu.items():
            self.cpu[group] = self.cpu.get(group, Cpu()) + seconds
        self._sorted = None

    def add_syscalls(
        self, group: str, counts: dict[str, int], seconds: float, result: LoadResult
    ) -> None:
        """perf's counts for `seconds` of a slice; the requests of those seconds are
        estimated from the slice's rate (perf starts a few ms into the measured window)."""
        rate = len(result.latencies_ns) / result.measured_seconds if result.measured_seconds else 0
        mine = self.syscalls.setdefault(group, {})
        for name, value in counts.items():
            mine[name] = mine.get(name, 0) + value
        self.syscall_requests[group] = self.syscall_requests.get(group, 0.0) + rate * seconds

    def syscalls_per_request(self, group: str, name: str) -> float:
        requests = self.syscall_requests.get(group, 0.0)
        count = self.syscalls.get(group, {}).get(name)
        return count / requests if requests and count is not None else float("nan")

    @property
    def rps(self) -> float:
        return self.recorded / self.seconds if self.seconds else 0.0

    def percentile_ms(self, q: float) -> float:
        if self._sorted is None:
            self._sorted = sorted(v for part in self.latencies for v in part)
        return nearest_rank(self._sorted, q) / 1e6 if self._sorted else float("nan")

    def vcpu(self, group: str) -> float:
        """Average cores the group used in the measured windows."""
        return self.cpu.get(group, Cpu()).total / self.seconds if self.seconds else 0.0

    def system_share(self, groups: list[str]) -> float:
        """The kernel's part of the groups' CPU."""
        total = sum(self.cpu.get(g, Cpu()).total for g in groups)
        return sum(self.cpu.get(g, Cpu()).system for g in groups) / total if total else 0.0

    @property
    def late_share(self) -> float:
        """Share of the generator's wake-ups that came over 1 ms late: the machine stalled
        the generator itself, whatever the path under test did."""
        return self.late_over_1ms / self.late_samples if self.late_samples else 0.0

    @property
    def vcpu_loadgen(self) -> float:
        return self.loadgen_cpu / self.seconds if self.seconds else 0.0

    @property
    def vcpu_others(self) -> float:
        """Busy cores of the machine minus the measured processes: what else ran (other
        users, the idle pods of the other scenarios, isthmusd) and interfered."""
        if not self.seconds:
            return 0.0
        ours = sum(c.total for c in self.cpu.values()) + self.loadgen_cpu
        return (self.machine_busy - ours) / self.seconds

    def within(self, moment: float) -> bool:
        """Whether a wall-clock moment fell in one of the measured windows."""
        return any(start <= moment < end for start, end in self.windows)

    def vcpu_per_krps(self, groups: list[str]) -> float:
        """Cores the groups used per 1000 requests/s actually served."""
        if not self.rps:
            return float("nan")
        return sum(self.vcpu(g) for g in groups) / (self.rps / 1000)
