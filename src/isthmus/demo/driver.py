"""Drive a local mesh the way a user does: the `isthmus` CLI, plus reads of the daemon API.

The tour changes the mesh only through CLI commands (`up`, `apply`, `exec`, `down`), so
what it shows is what a user can repeat by hand; it reads pods and proxy sync state from
the daemon's API directly, because it polls them many times a second.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from isthmus.daemon.client import DaemonClient, DaemonError, DaemonNotRunning
from isthmus.home import MeshHome

ENVOY_ADMIN = "http://127.0.0.1:15000"


class DemoError(Exception):
    """The tour can not go on; the message says what failed."""


def isthmus_argv() -> list[str]:
    """The `isthmus` console script of this interpreter, else the CLI via `python -c`."""
    script = Path(sys.executable).parent / "isthmus"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from isthmus.cli.main import main; main()"]


class MeshDriver:
    """One mesh home: CLI commands, pod lookups, waits and in-pod load runs."""

    def __init__(self, home: MeshHome) -> None:
        self.home = home
        self.scratch = home.root / "demo"

    # --- the CLI ---------------------------------------------------------------------

    def argv(self, *args: str) -> list[str]:
        return [*isthmus_argv(), "--home", str(self.home.root), *args]

    def cli(self, *args: str, timeout: float = 120) -> str:
        try:
            result = subprocess.run(
                self.argv(*args), capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired as exc:
            raise DemoError(f"`isthmus {' '.join(args)}` took over {timeout:.0f}s") from exc
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            raise DemoError(f"`isthmus {' '.join(args)}` failed: {' / '.join(detail)}")
        return result.stdout

    def apply(self, text: str, label: str) -> None:
        """`isthmus apply -f` of `text`, kept under <home>/demo/ for the user to read."""
        self.scratch.mkdir(parents=True, exist_ok=True)
        path = self.scratch / f"{label}.yaml"
        path.write_text(text)
        self.cli("apply", "-f", str(path))

    def exec(self, pod: dict[str, Any], argv: Sequence[str], timeout: float = 120) -> str:
        return self.cli("exec", pod["name"], "-n", pod["namespace"], "--", *argv, timeout=timeout)

    def exec_background(self, pod: dict[str, Any], argv: Sequence[str]) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv("exec", pod["name"], "-n", pod["namespace"], "--", *argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    # --- load and Envoy stats inside pods ----------------------------------------------

    @staticmethod
    def load_argv(urls: Sequence[str], *args: str) -> list[str]:
        return [sys.executable, "-m", "isthmus.demo.load", *urls, *args]

    @staticmethod
    def parse_load(out: str) -> dict[str, Any]:
        lines = out.strip().splitlines()
        if not lines:
            raise DemoError("the load generator printed nothing")
        return dict(json.loads(lines[-1]))

    def load(self, pod: dict[str, Any], urls: Sequence[str], *args: str) -> dict[str, Any]:
        return self.parse_load(self.exec(pod, self.load_argv(urls, *args)))

    def finish(self, process: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            process.kill()
            process.communicate()
            raise DemoError(f"a load run did not end within {timeout:.0f}s") from exc
        if process.returncode != 0:
            raise DemoError(f"a load run failed: {err.strip()[-300:]}")
        return self.parse_load(out)

    def envoy_stats(self, pods: Sequence[dict[str, Any]], pattern: str) -> list[dict[str, int]]:
        """Counters whose names match `pattern` (a regex) from each pod's sidecar Envoy."""
        script = (
            "import sys,urllib.parse,urllib.request;"
            f"u='{ENVOY_ADMIN}/stats?filter='+urllib.parse.quote(sys.argv[1]);"
            "print(urllib.request.urlopen(u,timeout=5).read().decode())"
        )
        runs = [self.exec_background(p, [sys.executable, "-c", script, pattern]) for p in pods]
        out = []
        for run in runs:
            text, _ = run.communicate(timeout=60)
            stats: dict[str, int] = {}
            for line in text.splitlines():
                name, _, value = line.partition(": ")
                if value.strip().isdigit():
                    stats[name] = int(value)
            out.append(stats)
        return out

    # --- the daemon's API --------------------------------------------------------------

    def request(self, method: str, path: str) -> dict[str, Any]:
        try:
            with DaemonClient(self.home, timeout=10) as client:
                return client.request(method, path)
        except (DaemonError, DaemonNotRunning) as exc:
            raise DemoError(str(exc)) from exc

    def runtime_on(self) -> bool:
        return bool(self.request("GET", "/v1/pods").get("runtime"))

    def pods(self, namespace: str | None = None) -> list[dict[str, Any]]:
        pods = list(self.request("GET", "/v1/pods")["pods"])
        return [p for p in pods if namespace is None or p["namespace"] == namespace]

    def wait_ready(
        self, namespace: str, expected: dict[str, int], timeout: float
    ) -> list[dict[str, Any]]:
        """Until each deployment has that many pods, all ready (a rollout has finished)."""
        deadline = time.monotonic() + timeout
        pods: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            pods = [p for p in self.pods(namespace) if p["deployment"] in expected]
            counts = {d: sum(1 for p in pods if p["deployment"] == d) for d in expected}
            if counts == expected and all(p["ready"] for p in pods):
                return sorted(pods, key=lambda p: (p["deployment"], p["name"]))
            time.sleep(0.3)
        states = ", ".join(f"{p['name']} {p['phase']} ready={p['ready']}" for p in pods)
        raise DemoError(f"pods not ready within {timeout:.0f}s: {states or 'none'}")

    def proxy_versions(self) -> dict[str, tuple[Any, ...]]:
        proxies = self.request("GET", "/v1/proxies")["proxies"]
        return {
            str(p.get("node_id")): tuple(
                (t, e.get("sent_version"), e.get("pending"))
                for t, e in sorted(p.get("types", {}).items())
            )
            for p in proxies
        }

    def wait_synced(self, before: dict[str, tuple[Any, ...]], timeout: float = 10) -> float:
        """After a change: until the proxies got new versions and ACKed them. Returns seconds.

        Every sidecar sees every service here, so normally all of them change; one that
        still shows its old version a second after the others is taken to need nothing."""
        started = time.monotonic()
        first_change: float | None = None
        while time.monotonic() - started < timeout:
            now = self.proxy_versions()
            changed = [node for node, versions in before.items() if now.get(node) != versions]
            pending = any(p for entries in now.values() for _, _, p in entries)
            if changed and first_change is None:
                first_change = time.monotonic()
            settled = len(changed) == len(before) or (
                first_change is not None and time.monotonic() - first_change > 1.0
            )
            if changed and settled and not pending:
                return time.monotonic() - started
            time.sleep(0.05)
        raise DemoError(f"the proxies did not ACK the change within {timeout:.0f}s")
