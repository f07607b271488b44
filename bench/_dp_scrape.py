"""A Prometheus-like scraper of the sidecars' merged metrics (the agent's :15020), run
inside a pod without a sidecar, where the seed's monitoring agent and `isthmus up --with
prometheus` run theirs.

It scrapes as Prometheus does with its defaults: every target once per interval (15 s,
Prometheus's default `scrape_interval`), the targets at fixed offsets spread over the
interval, one keep-alive connection per target, Prometheus's request headers (Accept for
OpenMetrics and the text format, `Accept-Encoding: gzip`, the scrape-timeout header), and
the whole body read. It neither parses nor stores samples: that is Prometheus's own CPU,
not the mesh's. Each scrape is one JSON line on stdout: target, wall-clock start,
seconds, bytes, status (or the error's name).

Run as a script inside the pod (stdlib only):

    python _dp_scrape.py --interval 15 NAME=URL ...                  until SIGTERM
    python _dp_scrape.py --count 20 --gap 0.25 NAME=URL              one target, N times

The bench side (`Scraper`) starts it, collects the lines and stops it.
"""

from __future__ import annotations

import argparse
import http.client
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

ACCEPT = (
    "application/openmetrics-text;version=1.0.0;q=0.5,"
    "application/openmetrics-text;version=0.0.1;q=0.4,"
    "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)
HEADERS = {
    "Accept": ACCEPT,
    "Accept-Encoding": "gzip",
    "User-Agent": "Prometheus/2.53.0",
    "X-Prometheus-Scrape-Timeout-Seconds": "10",
}
TIMEOUT = 10.0  # Prometheus's default scrape_timeout
SCRIPT = Path(__file__)


class _Target:
    def __init__(self, name: str, url: str) -> None:
        self.name = name
        parts = urllib.parse.urlsplit(url)
        self.host = parts.hostname or ""
        self.port = parts.port or 80
        self.path = parts.path + (f"?{parts.query}" if parts.query else "")
        self.connection: http.client.HTTPConnection | None = None

    def scrape(self) -> dict[str, object]:
        started = time.time()
        begin = time.monotonic()
        status: object
        size = 0
        try:
            if self.connection is None:
                self.connection = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT)
            self.connection.request("GET", self.path, headers=HEADERS)
            response = self.connection.getresponse()
            size = len(response.read())
            status = response.status
            if response.will_close:
                self._close()
        except (OSError, http.client.HTTPException) as error:
            status = type(error).__name__
            self._close()
        seconds = time.monotonic() - begin
        return {
            "target": self.name,
            "started": started,
            "seconds": seconds,
            "bytes": size,
            "status": status,
        }

    def _close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def _emit(record: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def _main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--interval", type=float, default=15.0)
    parser.add_argument("--count", type=int, default=0, help="one target, N scrapes, then exit")
    parser.add_argument("--gap", type=float, default=0.25, help="seconds between --count scrapes")
    parser.add_argument("targets", nargs="+", help="NAME=URL")
    args = parser.parse_args(argv)
    targets = [_Target(*t.split("=", 1)) for t in args.targets]
    if args.count:
        for _ in range(args.count):
            _emit(targets[0].scrape())
            time.sleep(args.gap)
        return 0
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    start = time.monotonic()
    # Target i at offset i/n of the interval, as Prometheus spreads its targets.
    due = [start + args.interval * i / len(targets) for i in range(len(targets))]
    while not stop.is_set():
        i = min(range(len(targets)), key=due.__getitem__)
        if stop.wait(max(0.0, due[i] - time.monotonic())):
            break
        _emit(targets[i].scrape())
        due[i] += args.interval
    return 0


@dataclass(frozen=True)
class Scrape:
    target: str
    started: float  # wall clock (time.time()), comparable with the bench's windows
    seconds: float
    bytes: int
    status: str

    @property
    def ok(self) -> bool:
        return self.status == "200"


def _parse(line: str) -> Scrape | None:
    if not line.startswith("{"):
        return None
    r = json.loads(line)
    return Scrape(r["target"], r["started"], r["seconds"], r["bytes"], str(r["status"]))


def script_argv(python: str, options: Sequence[str], targets: dict[str, str]) -> list[str]:
    return [python, str(SCRIPT), *options, *(f"{n}={u}" for n, u in targets.items())]


@dataclass
class Scraper:
    """The periodic scraper, running inside a pod (`argv` is wrapped for it) until
    `stop`; its scrapes are collected as they come."""

    argv: list[str]
    records: list[Scrape] = field(default_factory=list)
    _process: subprocess.Popen[str] | None = None
    _reader: threading.Thread | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            record = _parse(line)
            if record is not None:
                self.records.append(record)

    def stop(self) -> None:
        """Never raises (runs in `finally`)."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if self._reader is not None:
            self._reader.join(timeout=5)


def scrape_times(argv: list[str], timeout: float) -> list[Scrape]:
    """The one-shot form (`--count`): run it to the end, return its scrapes."""
    out = subprocess.run(
        argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=True, timeout=timeout
    ).stdout
    return [r for r in map(_parse, out.splitlines()) if r is not None]


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
