"""e2e harness: the real `isthmus` CLI, as root, with real namespaces and iptables.

Each test module gets its own mesh (own name, home and namespaces) and always runs
`isthmus down` afterwards, also when the test failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from isthmus.daemon.client import DaemonClient
from isthmus.home import resolve_home
from isthmus.netns.host_netns import release_host_netns

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
    up_output: str = ""  # what `isthmus up` printed

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


@contextlib.contextmanager
def running_mesh(
    *up_args: str, timeout: float = 120, ingress_gateway: bool = False
) -> Iterator[E2EMesh]:
    """A new mesh (own name and home) started with `isthmus up UP_ARGS`; always `down`.

    Without the ingress gateway `up` installs by default (`--no-ingress-gateway`) unless
    `ingress_gateway`: its pod would cost every test's start and show in every pod list."""
    _need_root()
    home = Path(tempfile.mkdtemp(prefix="ie2e-", dir="/tmp"))
    m = E2EMesh(home, "e2e" + secrets.token_hex(3))
    gateway = () if ingress_gateway else ("--no-ingress-gateway",)
    try:
        m.up_output = m.cli("up", "--mesh", m.name, *gateway, *up_args, timeout=timeout).stdout
        yield m
    finally:
        m.cli("down", check=False, timeout=max(timeout, 120))
        release_host_netns(resolve_home(home).host_netns)  # `down` did, unless it failed
        shutil.rmtree(home, ignore_errors=True)
    # `down` released the mesh's name: nothing of the mesh holds it any more.
    assert not Path(f"/run/isthmus/{m.name}.lock").exists()


@pytest.fixture(scope="module")
def mesh() -> Iterator[E2EMesh]:
    with running_mesh() as m:
        yield m


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


# --- helpers for load and failure tests (resilience, rollout) -------------------------


@dataclass
class BackgroundLoad:
    """`isthmus.demo.load` running in a pod while the test changes things around it."""

    process: subprocess.Popen[str]

    def result(self, timeout: float = 120) -> dict[str, Any]:
        try:
            out, err = self.process.communicate(timeout=timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        if self.process.returncode != 0:
            raise AssertionError(f"load generator failed: {err}{out}")
        return dict(json.loads(out.strip().splitlines()[-1]))


def start_load(mesh: E2EMesh, pod: dict[str, Any], url: str, *args: str) -> BackgroundLoad:
    argv = [ISTHMUS, "--home", str(mesh.home), "exec", pod["name"], "-n", pod["namespace"], "--"]
    process = subprocess.Popen(
        [*argv, PYTHON, "-m", "isthmus.demo.load", url, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return BackgroundLoad(process)


def success_ratio(summary: dict[str, Any]) -> float:
    """The share of requests answered 200 (0 when nothing was sent)."""
    total = sum(summary["statuses"].values())
    return summary["statuses"].get("200", 0) / total if total else 0.0


def netns_pid(pod: dict[str, Any], marker: str) -> int | None:
    """The pid of the process in the pod's namespace whose argv contains `marker`."""
    listed = subprocess.run(
        ["ip", "netns", "pids", pod["netns"]], capture_output=True, text=True, check=True
    ).stdout.split()
    for pid in listed:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(marker.encode() in arg for arg in argv):
            return int(pid)
    return None


def app_pid(pod: dict[str, Any], marker: str = "isthmus.demo.app") -> int:
    """The pid of the pod's application process, found among its namespace's processes."""
    pid = netns_pid(pod, marker)
    if pid is None:
        raise AssertionError(f"no {marker} process in {pod['netns']}")
    return pid


def wait_until(condition: Any, timeout: float, what: str, interval: float = 0.3) -> Any:
    """Poll `condition()` until it returns something truthy; fail naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def demo_deployment(
    name: str,
    app: str,
    replicas: int,
    env: dict[str, str] | None = None,
    version: str = "v1",
    namespace: str = "production",
    readiness_path: str = "/healthz",
) -> str:
    """Like app_deployment, with extra environment (the demo app's LATENCY, ERROR_RATE)
    and a readiness probe on the app's health path, which its latency knob does not slow
    (a slow dependency must not make the pod unready)."""
    extra = "".join(
        f"        - {{name: {k}, value: {json.dumps(v)}}}\n" for k, v in (env or {}).items()
    )
    manifest = app_deployment(name, app, version, replicas, namespace)
    marker = "        env:\n"
    manifest = manifest.replace(marker, marker + extra, 1)
    return manifest.replace("httpGet: {path: /,", f"httpGet: {{path: {readiness_path},", 1)


def _proxy_nonces(mesh: E2EMesh) -> dict[str, dict[str, Any]]:
    with DaemonClient(resolve_home(mesh.home)) as client:
        proxies = client.request("GET", "/v1/proxies")["proxies"]
    return {p["node_id"]: p for p in proxies}


def apply_in_effect(mesh: E2EMesh, text: str, node_part: str = "order-service") -> None:
    """Apply, then wait until the caller's proxy was sent the change and ACKed it."""
    before = {
        node: {t: s["sent_nonce"] for t, s in p["types"].items()}
        for node, p in _proxy_nonces(mesh).items()
        if node_part in node
    }
    mesh.apply(text)

    def synced() -> bool:
        now = {n: p for n, p in _proxy_nonces(mesh).items() if node_part in n}
        return bool(now) and all(
            p["synced"]
            and any(s["sent_nonce"] != before.get(n, {}).get(t) for t, s in p["types"].items())
            for n, p in now.items()
        )

    wait_until(synced, 15, f"proxies of {node_part} to ACK the change")


# --- Prometheus (`isthmus up --with prometheus`) ----------------------------------------

PrometheusApi = Callable[[str, "dict[str, str] | None"], Any]


@contextlib.contextmanager
def prometheus_mesh() -> Iterator[E2EMesh]:
    """A mesh started with the Prometheus addon (skipped where Debian's prometheus is
    missing; scripts/setup.sh installs it)."""
    _need_root()
    if shutil.which("prometheus") is None:
        pytest.skip("Debian's prometheus is not installed (scripts/setup.sh installs it)")
    with running_mesh("--with", "prometheus", timeout=180) as m:
        yield m


@contextlib.contextmanager
def prometheus_api(mesh: E2EMesh) -> Iterator[PrometheusApi]:
    """Prometheus's HTTP API through `isthmus port-forward -n istio-system svc/prometheus`
    on the host's loopback, as a user reaches it; the forwarder is always stopped."""
    argv = [ISTHMUS, "--home", str(mesh.home), "port-forward", "-n", "istio-system"]
    process = subprocess.Popen(
        [*argv, "svc/prometheus", ":9090"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("Forwarding from 127.0.0.1:"), first
        port = int(first.split(":")[1].split()[0])

        def get(path: str, query: dict[str, str] | None = None) -> Any:
            url = f"http://127.0.0.1:{port}{path}"
            if query:
                url += "?" + urllib.parse.urlencode(query)
            with urllib.request.urlopen(url, timeout=10) as answer:
                body = answer.read()
            return json.loads(body) if path.startswith("/api/") else body.decode()

        yield get
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)
