"""Build and drive `dp` (bench/_dp_loadgen.c): the bench's HTTP server and its fixed-rate
load generator.

Both are C on purpose: the application must never be the bottleneck, and a generator in
Python would add its own event-loop jitter to latencies of a few hundred microseconds.
The binary is compiled once per source version into a cache directory under /tmp, which
processes inside pod namespaces (root) can read.
"""

from __future__ import annotations

import array
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SOURCE = Path(__file__).with_name("_dp_loadgen.c")
CACHE = Path(tempfile.gettempdir()) / "isthmus-bench-dp"


def build() -> Path:
    """The compiled `dp` for the current source (gcc -O2), built if missing."""
    source = SOURCE.read_bytes()
    digest = hashlib.sha256(source).hexdigest()[:16]
    binary = CACHE / digest / "dp"
    if binary.exists():
        return binary
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("the data-plane bench needs a C compiler (apt-get install gcc)")
    binary.parent.mkdir(parents=True, exist_ok=True)
    partial = binary.with_suffix(f".{os.getpid()}")
    subprocess.run(
        [compiler, "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(partial), str(SOURCE)],
        check=True,
        timeout=120,
    )
    partial.replace(binary)
    return binary


def serve_argv(binary: Path, port: int, body_bytes: int) -> list[str]:
    return [str(binary), "serve", str(port), str(body_bytes)]


@dataclass(frozen=True)
class LoadSpec:
    """One load run: where to, how many connections, open-loop rate (0 = as fast as
    possible), seconds measured after `warmup` seconds that are not."""

    host: str
    port: int
    host_header: str
    connections: int
    rate: float
    duration: float
    warmup: float


@dataclass
class LoadResult:
    """A generator's summary and its recorded latencies (nanoseconds)."""

    summary: dict[str, object]
    latencies_ns: array.array[int] = field(default_factory=lambda: array.array("Q"))

    def count(self, key: str) -> int:
        value = self.summary.get(key, 0)
        return int(value) if isinstance(value, int | float) else 0

    @property
    def ok(self) -> int:
        status = self.summary.get("status", {})
        return int(status.get("2xx", 0)) if isinstance(status, dict) else 0

    @property
    def measured_seconds(self) -> float:
        value = self.summary.get("measured_seconds", 0.0)
        return float(value) if isinstance(value, int | float) else 0.0


def run_load(
    binary: Path,
    spec: LoadSpec,
    in_pod: Callable[[Sequence[str]], list[str]],
    on_measuring: Callable[[], None],
    workdir: Path,
) -> LoadResult:
    """Run the generator inside a pod (`in_pod` wraps an argv); calls `on_measuring` when
    the warmup ends, so CPU counters can be read for exactly the measured window."""
    out = Path(tempfile.mkstemp(prefix="lat-", suffix=".bin", dir=workdir)[1])
    argv = in_pod(
        [
            str(binary),
            "load",
            spec.host,
            str(spec.port),
            spec.host_header,
            str(spec.connections),
            str(spec.rate),
            str(spec.duration),
            str(spec.warmup),
            str(out),
        ]
    )
    limit = spec.warmup + spec.duration + 30
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        summary: dict[str, object] | None = None
        try:
            for line in process.stdout:
                if line.strip() == "measuring":
                    on_measuring()
                elif line.startswith("{"):
                    summary = json.loads(line)
            process.wait(timeout=limit)
        finally:
            if process.poll() is None:
                process.kill()
    if process.returncode != 0 or summary is None:
        raise RuntimeError(f"load generator failed (exit {process.returncode}): {argv}")
    latencies = array.array("Q")
    latencies.frombytes(out.read_bytes())
    out.unlink()
    return LoadResult(summary, latencies)
