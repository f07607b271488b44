"""The runtime verbs through the real CLI against a real daemon API (SQLite store, mesh
controller, runtime endpoints) served in-process, without a node runtime: scale persists
through apply, and everything that needs pods says the runtime is not running."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from _api_thread import ApiThread
from aiohttp import web
from click.testing import CliRunner, Result

from isthmus.cli.main import cli
from isthmus.daemon.client import DaemonClient, DaemonError
from isthmus.daemon.http_api import ApiHooks, build_app
from isthmus.daemon.mesh import MeshController
from isthmus.daemon.runtime_api import RuntimeApi
from isthmus.home import MeshHome
from isthmus.store import SqliteStore

MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: production}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: app, command: [sleep, "60"], ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: production}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-vm, namespace: production}
spec:
  address: 10.0.0.5
  labels: {app: web}
"""


def Daemon(home: MeshHome) -> ApiThread:
    """The daemon's HTTP API with the runtime routes; no node runtime ever connected."""

    def app(store: SqliteStore) -> web.Application:
        routes = RuntimeApi(store, MeshController(store), lambda: 0).routes()
        return build_app(store, ApiHooks(extra_routes=routes))

    return ApiThread(home, app)


Isthmus = Callable[..., Result]


@pytest.fixture
def home() -> Iterator[MeshHome]:
    root = Path(tempfile.mkdtemp(prefix="isth-", dir="/tmp"))  # short unix socket path
    try:
        with Daemon(MeshHome(root)) as daemon:
            yield daemon.home
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def isthmus(home: MeshHome, tmp_path: Path) -> Isthmus:
    manifest = tmp_path / "web.yaml"
    manifest.write_text(MANIFEST)

    def run(*args: str) -> Result:
        return CliRunner().invoke(cli, ["--home", str(home.root), *args])

    applied = run("apply", "-f", str(manifest))
    assert applied.exit_code == 0, applied.output
    return run


def stored_replicas(home: MeshHome) -> tuple[int, str]:
    with DaemonClient(home) as client:
        (body,) = client.get("Deployment", "production", "web")
    return body["spec"]["replicas"], body["metadata"]["resourceVersion"]


def test_scale_changes_the_stored_deployment(isthmus: Isthmus, home: MeshHome) -> None:
    before = stored_replicas(home)
    result = isthmus("scale", "deploy", "web", "--replicas", "3", "-n", "production")
    assert result.exit_code == 0, result.output
    assert result.stdout == "deployment.apps/web scaled\n"
    replicas, version = stored_replicas(home)
    assert replicas == 3 and version != before[1]

    refused = isthmus(
        "scale", "deployment/web", "--replicas", "1", "--current-replicas", "2", "-n", "production"
    )
    assert refused.exit_code == 1
    assert refused.stderr == "error: expected replicas of deployment web to be 2, was 3\n"
    assert stored_replicas(home)[0] == 3

    missing = isthmus("scale", "deploy", "web", "--replicas", "1")  # namespace default
    assert missing.exit_code == 1
    assert missing.stderr == 'error: deployments.apps "web" not found in namespace default\n'


def test_without_the_runtime_deployments_show_the_stored_spec(isthmus: Isthmus) -> None:
    result = isthmus("get", "deploy", "-n", "production")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].split() == ["NAME", "REPLICAS", "AGE"]


def test_endpoints_of_a_service_from_the_mesh_model(isthmus: Isthmus) -> None:
    result = isthmus("get", "endpoints", "-n", "production")
    assert result.exit_code == 0, result.output
    header, row = result.stdout.splitlines()
    assert header.split() == ["NAME", "ENDPOINTS", "AGE"]
    assert row.split()[:2] == ["web", "10.0.0.5:8080"]
    one = isthmus("get", "ep", "web", "-n", "production", "-o", "json")
    assert '"kind": "Endpoints"' in one.stdout and '"ip": "10.0.0.5"' in one.stdout
    missing = isthmus("get", "ep", "nope", "-n", "production")
    assert (missing.exit_code, missing.stderr) == (
        1,
        'error: endpoints "nope" not found in namespace production\n',
    )


@pytest.mark.parametrize(
    "args",
    [
        ("delete", "pod", "web-1", "-n", "production"),
        ("get", "pods", "-o", "wide"),
        ("x", "iptables", "web-1"),
        ("proxy-config", "listeners", "web-1.production"),
    ],
)
def test_pod_verbs_say_the_runtime_is_not_running(isthmus: Isthmus, args: tuple[str, ...]) -> None:
    result = isthmus(*args)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: the local runtime is not running")
    assert len(result.stderr.splitlines()) == 1


def test_delete_pod_endpoint_without_runtime(home: MeshHome, isthmus: Isthmus) -> None:
    with DaemonClient(home) as client:
        with pytest.raises(DaemonError) as refused:
            client.request("POST", "/v1/pods/delete", {"namespace": "production", "name": "x"})
        assert client.request("GET", "/v1/deployments") == {"runtime": False, "deployments": []}
    assert refused.value.status == 409
    assert refused.value.lines[0].startswith("the local runtime is not running")
