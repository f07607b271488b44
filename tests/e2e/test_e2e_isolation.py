"""An application can not steal identities or escape its sidecar.

An "attacker" app in a meshed pod tries what a compromised app would: read the mesh CA's
key, read another pod's token, talk to isthmusd's API, xDS/CA and shim sockets, flush its
own pod's capture rules, kill another pod's Envoy or isthmusd. Each must be refused, and
afterwards the capture rules and the other pod's Envoy are still there. A second app runs
with a securityContext (uid 1000, no_new_privs, only NET_BIND_SERVICE) and serves on port
80 through the mesh. A pod whose runAsNonRoot it would break is not started, and says why.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from conftest import PYTHON, E2EMesh, netns_pid, wait_until

NS = "production"

ATTACK = r"""
import json, os, signal, socket, subprocess, sys

def attempt(action):
    try:
        action()
        return "allowed"
    except OSError as exc:
        return type(exc).__name__

def read(path):
    with open(path, "rb") as f:
        f.read()

def connect(path):
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)

def flush():
    argv = [os.environ["IPTABLES"], "-t", "nat", "-F"]
    done = subprocess.run(argv, capture_output=True, text=True)
    return {"code": done.returncode, "stderr": done.stderr.strip()}

lines = open("/proc/self/status").read().splitlines()
status = dict(line.split(":\t", 1) for line in lines if ":\t" in line)
attacks = {
    "ca_key": attempt(lambda: read(os.environ["CA_KEY"])),
    "other_token": attempt(lambda: read(os.environ["OTHER_TOKEN"])),
    "api_socket": attempt(lambda: connect(os.environ["API_SOCKET"])),
    "xds_socket": attempt(lambda: connect(os.environ["XDS_SOCKET"])),
    "shim_socket": attempt(lambda: connect(os.environ["SHIM_SOCKET"])),
    "kill_envoy": attempt(lambda: os.kill(int(os.environ["ENVOY_PID"]), signal.SIGKILL)),
    "kill_isthmusd": attempt(lambda: os.kill(int(os.environ["ISTHMUSD_PID"]), signal.SIGKILL)),
    "flush_capture": flush(),
}
report = {
    "attacks": attacks,
    "pid": os.getpid(),
    "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
    "CapEff": status["CapEff"].strip(),
    "CapBnd": status["CapBnd"].strip(),
    "cwd": os.getcwd(),
}
print("REPORT " + json.dumps(report), flush=True)
signal.pause()
"""

# Reports its own status, then becomes the demo app (on port 80 as uid 1000).
SECURE = r"""
import json, os, runpy
lines = open("/proc/self/status").read().splitlines()
status = dict(line.split(":\t", 1) for line in lines if ":\t" in line)
print("REPORT " + json.dumps({k: v.strip() for k, v in status.items()}), flush=True)
runpy.run_module("isthmus.demo.app", run_name="__main__")
"""


def _env(values: dict[str, str]) -> str:
    return "".join(f"        - {{name: {k}, value: {json.dumps(v)}}}\n" for k, v in values.items())


def _deployment(
    name: str, script: str, env: dict[str, str], extra: str = "", security: str = ""
) -> str:
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {NS}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}, version: v1}}}}
    spec:
      terminationGracePeriodSeconds: 2
{security}      containers:
      - name: app
        command: [{PYTHON}, -c, {json.dumps(script)}]
        env:
{_env(env)}{extra}---
"""


def _victim() -> str:
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: victim, namespace: {NS}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: victim}}}}
  template:
    metadata: {{labels: {{app: victim, version: v1}}}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: app
        command: [{PYTHON}, -m, isthmus.demo.app]
        env: [{{name: SERVICE, value: victim}}]
        ports: [{{containerPort: 8080, name: http}}]
        readinessProbe:
          httpGet: {{path: /healthz, port: 8080}}
          periodSeconds: 1
---
"""


SECURE_CONTEXT = """\
        securityContext:
          runAsUser: 1000
          allowPrivilegeEscalation: false
          capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}
        ports: [{containerPort: 80, name: http}]
        readinessProbe:
          httpGet: {path: /healthz, port: 80}
          periodSeconds: 1
"""

SECURE_SERVICE = f"""
apiVersion: v1
kind: Service
metadata: {{name: secure, namespace: {NS}}}
spec:
  selector: {{app: secure}}
  ports: [{{name: http, port: 80}}]
---
"""


def _report(mesh: E2EMesh, pod: dict[str, Any]) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        out = mesh.cli("logs", pod["name"], "-n", NS).stdout
        lines = [line for line in out.splitlines() if line.startswith("REPORT ")]
        return dict(json.loads(lines[0].removeprefix("REPORT "))) if lines else None

    report: dict[str, Any] = wait_until(found, 30, f"the report of {pod['name']}")
    return report


def test_an_app_can_not_steal_identities_or_bypass_its_sidecar(mesh: E2EMesh) -> None:
    mesh.apply(_victim())
    victim = mesh.wait_pods({"victim": 1})[0]
    token = Path(f"/run/isthmus/{mesh.name}/{NS}.{victim['name']}/istio-token")
    envoy = netns_pid(victim, "envoy-bootstrap.json")
    shims = sorted(Path(f"/run/isthmus/{mesh.name}/shims").glob("*.sock"))
    ca_key = mesh.home / "ca" / "ca-key.pem"
    targets = {
        "CA_KEY": ca_key,
        "OTHER_TOKEN": token,
        "API_SOCKET": mesh.home / "isthmusd.sock",
        "XDS_SOCKET": mesh.home / "xds.sock",
        "SHIM_SOCKET": shims[0] if shims else Path("/nonexistent"),
    }
    # The test means something only if the targets are there, seen from the host.
    for name, path in targets.items():
        assert path.exists(), f"{name}: {path} does not exist on the host"
    assert envoy is not None
    isthmusd = int((mesh.home / "isthmusd.pid").read_text())
    env = {name: str(path) for name, path in targets.items()} | {
        "ENVOY_PID": str(envoy),
        "ISTHMUSD_PID": str(isthmusd),
        "IPTABLES": shutil.which("iptables") or "/usr/sbin/iptables",
    }

    mesh.apply(
        _deployment("attacker", ATTACK, env)
        + _deployment("secure", SECURE, {"PORT": "80", "SERVICE": "secure"}, SECURE_CONTEXT)
        + SECURE_SERVICE
    )
    pods = {p["deployment"]: p for p in mesh.wait_pods({"victim": 1, "attacker": 1, "secure": 1})}
    attacker = pods["attacker"]
    report = _report(mesh, attacker)
    attacks = report["attacks"]
    print(f"\nattacker: {json.dumps(report)}")
    # Isthmus's state is not there at all in its mount namespace.
    for name in ("ca_key", "other_token", "api_socket", "xds_socket", "shim_socket"):
        assert attacks[name] == "FileNotFoundError", (name, attacks[name])
    # Other processes are not in its PID namespace.
    assert attacks["kill_envoy"] == attacks["kill_isthmusd"] == "ProcessLookupError"
    assert report["pids"] == [1, report["pid"]]
    # No CAP_NET_ADMIN: iptables can not touch the capture rules.
    assert attacks["flush_capture"]["code"] != 0, attacks["flush_capture"]
    assert "Permission denied" in attacks["flush_capture"]["stderr"], attacks["flush_capture"]
    assert int(report["CapEff"], 16) == int(report["CapBnd"], 16) == 0xA80425FB
    assert report["cwd"] == "/"
    # ...and everything is still in place.
    rules = mesh.cli("x", "iptables", attacker["name"], "-n", NS).stdout
    assert "15001" in rules and "15006" in rules
    assert netns_pid(victim, "envoy-bootstrap.json") == envoy
    assert os.path.exists(ca_key) and token.exists()

    # A securityContext: uid 1000, no_new_privs, only NET_BIND_SERVICE, and serving port 80
    # to the mesh with it.
    status = _report(mesh, pods["secure"])
    assert status["Uid"].split() == ["1000"] * 4
    assert status["NoNewPrivs"] == "1"
    assert int(status["CapEff"], 16) == int(status["CapBnd"], 16) == 1 << 10
    served = mesh.load(victim, "http://secure/", "--count", "10")
    assert served["statuses"] == {"200": 10}, served


def test_run_as_non_root_refuses_to_start_root(mesh: E2EMesh) -> None:
    mesh.apply(
        _deployment(
            "nonroot",
            "print('started')",
            {},
            security="      securityContext: {runAsNonRoot: true}\n",
        )
    )

    def refused() -> str | None:
        pods = [p for p in mesh.pods() if p["deployment"] == "nonroot"]
        if not pods:
            return None
        out = mesh.cli("logs", pods[0]["name"], "-n", NS).stdout
        return out if "CreateContainerConfigError" in out else None

    out = wait_until(refused, 30, "the refusal in the pod's log")
    assert "container has runAsNonRoot and would run as root" in out
    assert "started" not in out
    time.sleep(1)
    [pod] = [p for p in mesh.pods() if p["deployment"] == "nonroot"]
    assert not pod["ready"]
