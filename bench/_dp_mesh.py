"""The bench's mesh, driven as a user drives it: `isthmus --home H up/apply/down`.

Pods are looked up over the daemon's HTTP API; commands run inside a pod's network
namespace with the same `ip netns exec` argv `isthmus exec` uses.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from isthmus.daemon.client import DaemonClient
from isthmus.home import resolve_home
from isthmus.netns import exec_argv

ISTHMUS = str(Path(sys.executable).parent / "isthmus")


@dataclass
class BenchMesh:
    home: Path
    name: str

    def cli(self, *args: str, timeout: float = 120) -> str:
        result = subprocess.run(
            [ISTHMUS, "--home", str(self.home), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise RuntimeError(f"isthmus {' '.join(args)} failed: {result.stderr}{result.stdout}")
        return result.stdout

    def up(self) -> None:
        self.cli("up", "--mesh", self.name, "--no-ingress-gateway")

    def down(self) -> None:
        """Stop everything the mesh made; never raises (runs in `finally`)."""
        try:
            self.cli("down", timeout=180)
        except (RuntimeError, subprocess.TimeoutExpired) as error:
            print(f"warning: isthmus down: {error}", file=sys.stderr)

    def apply(self, text: str) -> None:
        path = self.home / f"apply-{time.monotonic_ns()}.yaml"
        path.write_text(text)
        self.cli("apply", "-f", str(path))

    def pods(self) -> list[dict[str, Any]]:
        with DaemonClient(resolve_home(self.home)) as client:
            return list(client.request("GET", "/v1/pods")["pods"])

    def wait_ready(self, deployments: Sequence[str], timeout: float) -> dict[str, dict[str, Any]]:
        """Until each deployment has one ready pod; returns deployment -> pod."""
        deadline = time.monotonic() + timeout
        pods: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            pods = self.pods()
            ready = {p["deployment"]: p for p in pods if p["ready"]}
            if all(d in ready for d in deployments):
                return {d: ready[d] for d in deployments}
            time.sleep(0.3)
        raise RuntimeError(f"pods not ready in {timeout:.0f}s: {pods}")

    def in_pod(self, pod: dict[str, Any], argv: Sequence[str]) -> list[str]:
        return exec_argv(pod["netns"], list(argv))

    def daemon_pid(self) -> int | None:
        return self._pid("isthmusd.pid")

    def node_pid(self) -> int | None:
        return self._pid("node.pid")

    def _pid(self, name: str) -> int | None:
        try:
            return int((self.home / name).read_text().strip())
        except (OSError, ValueError):
            return None

    def remove_home(self) -> None:
        shutil.rmtree(self.home, ignore_errors=True)
