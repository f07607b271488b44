"""e2e harness: the real `isthmus` CLI, as root, with real namespaces and iptables.

Each test module gets its own mesh (own name, home and namespaces) and always runs
`isthmus down` afterwards, also when the test failed.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from isthmus.daemon.client import DaemonClient
from isthmus.daemon.paths import resolve_home

ISTHMUS = str(Path(sys.executable).parent / "isthmus")
PYTHON = sys.executable

pytestmark = pytest.mark.root


def _need_root() -> None:
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("iptables-restore") is None:
        pytest.skip("e2e tests need root, ip and iptables (CI runs them as root)")


@dataclass
class E2EMesh:
    home: Path
    name: str

    def cli(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [ISTHMUS, "--home", str(self.home), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"isthmus {' '.join(args)} failed: {result.stderr}{result.stdout}")
        return result

    def apply(self, text: str) -> None:
        path = self.home / f"apply-{secrets.token_hex(4)}.yaml"
        path.write_text(text)
        self.cli("apply", "-f", str(path))

    def pods(self) -> list[dict[str, Any]]:
        with DaemonClient(resolve_home(self.home)) as client:
            return list(client.request("GET", "/v1/pods")["pods"])

    def wait_pods(self, expected: dict[str, int], timeout: float = 90) -> list[dict[str, Any]]:
        """Until each deployment has exactly that many ready pods and nothing else runs."""
        deadline = time.monotonic() + timeout
        pods: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            pods = self.pods()
            ready: dict[str, int] = {}
            for p in pods:
                if p["ready"]:
                    ready[p["deployment"]] = ready.get(p["deployment"], 0) + 1
            if ready == expected and len(pods) == sum(expected.values()):
                return pods
            time.sleep(0.3)
        raise AssertionError(f"pods not ready as {expected}: {pods}")

    def pod(self, deployment: str) -> dict[str, Any]:
        return next(p for p in self.pods() if p["deployment"] == deployment and p["ready"])

    def exec(self, pod: dict[str, Any], *argv: str, timeout: float = 120) -> str:
        return self.cli(
            "exec", pod["name"], "-n", pod["namespace"], "--", *argv, timeout=timeout
        ).stdout

    def load(self, pod: dict[str, Any], url: str, *args: str) -> dict[str, Any]:
        out = self.exec(pod, PYTHON, "-m", "isthmus.demo.load", url, *args)
        return dict(json.loads(out.strip().splitlines()[-1]))

    def envoy_stat(self, pod: dict[str, Any], name: str) -> int:
        script = (
            "import urllib.request,sys;"
            "t=urllib.request.urlopen('http://127.0.0.1:15000/stats').read().decode();"
            "print(sum(int(v) for k,_,v in (l.partition(': ') for l in t.splitlines())"
            " if k==sys.argv[1]))"
        )
        return int(self.exec(pod, PYTHON, "-c", script, name).strip() or 0)


@pytest.fixture(scope="module")
def mesh() -> Iterator[E2EMesh]:
    _need_root()
    home = Path(tempfile.mkdtemp(prefix="ie2e-", dir="/tmp"))
    m = E2EMesh(home, "e2e" + secrets.token_hex(3))
    try:
        m.cli("up", "--mesh", m.name)
        yield m
    finally:
        m.cli("down", check=False)
        shutil.rmtree(home, ignore_errors=True)


def app_deployment(
    name: str, app: str, version: str, replicas: int, namespace: str = "production"
) -> str:
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {app}, version: {version}}}}}
  template:
    metadata: {{labels: {{app: {app}, version: {version}}}}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: app
        image: isthmus/demo-app
        command: [{PYTHON}, -m, isthmus.demo.app]
        env:
        - {{name: SERVICE, value: {app}}}
        - {{name: VERSION, value: {version}}}
        - name: POD_NAME
          valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
        ports: [{{containerPort: 8080, name: http}}]
        readinessProbe:
          httpGet: {{path: /, port: 8080}}
          periodSeconds: 1
---
"""


def service(name: str, namespace: str = "production") -> str:
    return f"""
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: http, port: 8080}}]
---
"""
