"""The object API end to end: the real CLI against a real HTTP API on a unix socket.

Each test runs a minimal isthmusd (SqliteStore + build_app, served on a unix socket by
aiohttp in a background thread) and drives `isthmus` through click's runner, or as a
real subprocess where the exit code and stderr of the installed script matter.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiohttp import web
from click.testing import CliRunner, Result

from isthmus.api.loader import LoadedObject
from isthmus.cli.main import cli
from isthmus.daemon.client import DaemonClient, DaemonError
from isthmus.daemon.http_api import ApiHooks, build_app, start_unix_site
from isthmus.home import MeshHome
from isthmus.store import SqliteStore

ISTHMUS = Path(sys.executable).parent / "isthmus"

MESH = """\
apiVersion: v1
kind: Namespace
metadata:
  name: production
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: production
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
  namespace: production
spec:
  host: reviews
  subsets:
  - name: v1
    labels: {version: v1}
"""


def vs(name: str, namespace: str | None = None, host: str | None = None) -> str:
    ns = f"\n  namespace: {namespace}" if namespace else ""
    return textwrap.dedent(
        f"""\
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata:
          name: {name}{ns}
        spec:
          hosts: [{host or name}]
          http:
          - route:
            - destination: {{host: {host or name}}}
        """
    )


class Daemon:
    """A minimal isthmusd: the object API over SQLite, served from a background thread."""

    def __init__(self, home: MeshHome, hooks: ApiHooks | None = None) -> None:
        self.home = home
        self.hooks = hooks
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="isthmusd-test", daemon=True)

    def start(self) -> Daemon:
        self._thread.start()
        if not self._ready.wait(10):
            raise TimeoutError("test daemon did not start")
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # surfaced to start()
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        store = SqliteStore(self.home.db)
        try:
            runner = await start_unix_site(build_app(store, self.hooks), self.home.socket)
            self._ready.set()
            try:
                await self._stop.wait()
            finally:
                await runner.cleanup()
        finally:
            store.close()


@pytest.fixture
def home() -> Iterator[MeshHome]:
    # A short path: unix socket addresses are limited to 107 bytes.
    root = Path(tempfile.mkdtemp(prefix="isth-", dir="/tmp"))
    try:
        yield MeshHome(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def daemon(home: MeshHome) -> Iterator[Daemon]:
    running = Daemon(home).start()
    try:
        yield running
    finally:
        running.stop()


Isthmus = Callable[..., Result]


@pytest.fixture
def isthmus(home: MeshHome) -> Isthmus:
    """Run the CLI in-process against the test home."""

    def run(*args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(cli, ["--home", str(home.root), *args], input=input)

    return run


def lines(text: str) -> list[str]:
    return text.strip().splitlines()


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


# --- apply --------------------------------------------------------------------------


def test_apply_reports_created_configured_unchanged(
    daemon: Daemon, isthmus: Isthmus, tmp_path: Path
) -> None:
    manifest = write(tmp_path / "mesh.yaml", MESH)
    first = isthmus("apply", "-f", manifest)
    assert first.exit_code == 0, first.output
    assert lines(first.stdout) == [
        "namespace/production created",
        "virtualservice.networking.istio.io/reviews created",
        "destinationrule.networking.istio.io/reviews created",
    ]
    again = isthmus("apply", "-f", manifest)
    assert again.exit_code == 0
    assert [line.rsplit(" ", 1)[1] for line in lines(again.stdout)] == ["unchanged"] * 3

    write(tmp_path / "mesh.yaml", MESH.replace("subset: v1", "subset: v2"))
    changed = isthmus("apply", "-f", manifest)
    assert lines(changed.stdout) == [
        "namespace/production unchanged",
        "virtualservice.networking.istio.io/reviews configured",
        "destinationrule.networking.istio.io/reviews unchanged",
    ]
    with DaemonClient(daemon.home) as client:
        (stored,) = client.get("VirtualService", "production", "reviews")
    assert stored["spec"]["http"][0]["route"][0]["destination"]["subset"] == "v2"
    assert stored["metadata"]["resourceVersion"] == "4"


def test_dry_run_reports_without_changing_anything(
    daemon: Daemon, isthmus: Isthmus, tmp_path: Path
) -> None:
    result = isthmus("apply", "--dry-run", "-f", write(tmp_path / "m.yaml", MESH))
    assert result.exit_code == 0, result.output
    assert lines(result.stdout)[1] == (
        "virtualservice.networking.istio.io/reviews created (dry run)"
    )
    with DaemonClient(daemon.home) as client:
        assert client.get() == []
        assert client.healthz()["revision"] == 0


def test_apply_directory_and_stdin_and_namespace_flag(
    daemon: Daemon, isthmus: Isthmus, tmp_path: Path
) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    write(manifests / "b.yml", vs("bravo"))
    write(manifests / "a.yaml", vs("alpha"))
    write(manifests / "README.md", "not a manifest")
    result = isthmus("apply", "-n", "staging", "-f", str(manifests))
    assert result.exit_code == 0, result.output
    assert lines(result.stdout) == [
        "virtualservice.networking.istio.io/alpha created",
        "virtualservice.networking.istio.io/bravo created",
    ]
    piped = isthmus("apply", "-f", "-", input=vs("charlie"))
    assert piped.exit_code == 0, piped.output
    with DaemonClient(daemon.home) as client:
        assert [b["metadata"]["name"] for b in client.get(namespace="staging")] == [
            "alpha",
            "bravo",
        ]
        (charlie,) = client.get(name="charlie")
    assert charlie["metadata"]["namespace"] == "default"


def test_invalid_document_refuses_the_whole_apply(
    daemon: Daemon, isthmus: Isthmus, tmp_path: Path
) -> None:
    broken = MESH + "---\n" + vs("bad").replace("hosts:", "hostz:")
    path = write(tmp_path / "broken.yaml", broken)
    result = isthmus("apply", "-f", path)
    assert result.exit_code == 1
    assert result.stdout == ""
    errors = lines(result.stderr)
    assert errors and all(path in line for line in errors), errors
    assert any("hostz" in line for line in errors), errors
    assert "Traceback" not in result.output
    with DaemonClient(daemon.home) as client:
        assert client.get() == []


def test_stale_resource_version_is_a_conflict(
    daemon: Daemon, isthmus: Isthmus, tmp_path: Path
) -> None:
    path = write(tmp_path / "vs.yaml", vs("reviews"))
    assert isthmus("apply", "-f", path).exit_code == 0
    exported = isthmus("get", "vs", "reviews", "-o", "yaml").stdout
    write(tmp_path / "vs.yaml", vs("reviews", host="other"))
    assert isthmus("apply", "-f", path).exit_code == 0
    stale = write(tmp_path / "stale.yaml", exported.replace("- reviews", "- third"))
    result = isthmus("apply", "-f", stale)
    assert result.exit_code == 1
    assert lines(result.stderr) == [
        "VirtualService default/reviews: the object has been modified (resourceVersion 1 "
        "given, 2 stored); get it again and reapply"
    ]


# --- get ----------------------------------------------------------------------------


@pytest.fixture
def applied(daemon: Daemon, isthmus: Isthmus, tmp_path: Path) -> Daemon:
    result = isthmus("apply", "-f", write(tmp_path / "mesh.yaml", MESH + "---\n" + vs("ratings")))
    assert result.exit_code == 0, result.output
    return daemon


@pytest.mark.parametrize("spelling", ["vs", "virtualservices", "VirtualService", "virtualservice"])
def test_get_table_in_a_namespace(applied: Daemon, isthmus: Isthmus, spelling: str) -> None:
    result = isthmus("get", spelling, "-n", "production")
    assert result.exit_code == 0, result.output
    header, row = lines(result.stdout)
    assert header.split() == ["NAME", "GATEWAYS", "HOSTS", "AGE"]
    assert row.split()[:3] == ["reviews", "<none>", "reviews"]


def test_get_all_namespaces_and_default_namespace(applied: Daemon, isthmus: Isthmus) -> None:
    everywhere = lines(isthmus("get", "vs", "-A").stdout)
    assert everywhere[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert [row.split()[:2] for row in everywhere[1:]] == [
        ["default", "ratings"],
        ["production", "reviews"],
    ]
    default = lines(isthmus("get", "vs").stdout)
    assert [row.split()[0] for row in default[1:]] == ["ratings"]


def test_get_cluster_scoped_kind_ignores_namespace(applied: Daemon, isthmus: Isthmus) -> None:
    result = isthmus("get", "ns", "-n", "elsewhere")
    assert result.exit_code == 0, result.output
    assert [row.split()[0] for row in lines(result.stdout)] == ["NAME", "production"]


def test_get_yaml_and_json_outputs(applied: Daemon, isthmus: Isthmus) -> None:
    one = yaml.safe_load(isthmus("get", "dr", "reviews", "-n", "production", "-o", "yaml").stdout)
    assert one["kind"] == "DestinationRule"
    assert one["spec"]["subsets"] == [{"name": "v1", "labels": {"version": "v1"}}]
    assert one["metadata"]["resourceVersion"].isdigit()
    listed = json.loads(isthmus("get", "vs", "-A", "-o", "json").stdout)
    assert listed["kind"] == "List"
    assert [i["metadata"]["name"] for i in listed["items"]] == ["ratings", "reviews"]


def test_get_wide_adds_columns(applied: Daemon, isthmus: Isthmus) -> None:
    header, row = lines(isthmus("get", "dr", "-n", "production", "-o", "wide").stdout)
    assert header.split() == ["NAME", "HOST", "SUBSETS", "AGE"]
    assert row.split()[:3] == ["reviews", "reviews", "v1"]


def test_get_missing_name_fails_and_empty_list_does_not(applied: Daemon, isthmus: Isthmus) -> None:
    missing = isthmus("get", "vs", "nope", "-n", "production")
    assert missing.exit_code == 1
    assert lines(missing.stderr) == [
        'error: virtualservice.networking.istio.io "nope" not found in namespace production'
    ]
    empty = isthmus("get", "se")
    assert empty.exit_code == 0
    assert empty.stdout == ""
    assert lines(empty.stderr) == ["No resources found in default namespace."]


def test_unknown_kind_is_one_line(daemon: Daemon, isthmus: Isthmus) -> None:
    result = isthmus("get", "widgets")
    assert result.exit_code == 1
    (line,) = lines(result.stderr)
    assert line.startswith('error: unknown resource type "widgets"; known types:')


# --- delete -------------------------------------------------------------------------


def test_delete_by_name(applied: Daemon, isthmus: Isthmus) -> None:
    result = isthmus("delete", "vs", "reviews", "-n", "production")
    assert result.exit_code == 0, result.output
    assert lines(result.stdout) == ['virtualservice.networking.istio.io "reviews" deleted']
    with DaemonClient(applied.home) as client:
        assert client.get("VirtualService", "production") == []


def test_delete_with_a_missing_object_deletes_nothing(applied: Daemon, isthmus: Isthmus) -> None:
    result = isthmus("delete", "dr", "reviews", "ghost", "-n", "production")
    assert result.exit_code == 1
    assert lines(result.stderr) == ["DestinationRule production/ghost not found"]
    with DaemonClient(applied.home) as client:
        assert len(client.get("DestinationRule", "production")) == 1


def test_delete_from_file(applied: Daemon, isthmus: Isthmus, tmp_path: Path) -> None:
    result = isthmus("delete", "-f", write(tmp_path / "mesh.yaml", MESH))
    assert result.exit_code == 0, result.output
    assert lines(result.stdout) == [
        'namespace "production" deleted',
        'virtualservice.networking.istio.io "reviews" deleted',
        'destinationrule.networking.istio.io "reviews" deleted',
    ]
    with DaemonClient(applied.home) as client:
        assert [b["metadata"]["name"] for b in client.get()] == ["ratings"]


def test_delete_needs_a_target(daemon: Daemon, isthmus: Isthmus) -> None:
    result = isthmus("delete", "vs")
    assert result.exit_code == 1
    assert lines(result.stderr) == [
        "error: give -f FILE or KIND NAME (e.g. `isthmus delete vs reviews`)"
    ]


TELEMETRY = """\
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata:
  name: namespace-no-log
  namespace: production
spec:
  accessLogging:
  - disabled: true
"""


def test_telemetry_apply_get_delete_with_kubectls_names(
    daemon: Daemon, isthmus: Isthmus, tmp_path: Path
) -> None:
    applied = isthmus("apply", "-f", write(tmp_path / "telemetry.yaml", TELEMETRY))
    assert applied.exit_code == 0, applied.output
    assert lines(applied.stdout) == ["telemetry.telemetry.istio.io/namespace-no-log created"]
    for spelling in ("telemetry", "telemetries", "Telemetry", "telemetries.telemetry.istio.io"):
        header, row = lines(isthmus("get", spelling, "-n", "production").stdout)
        assert header.split() == ["NAME", "AGE"]
        assert row.split()[0] == "namespace-no-log"
    stored = yaml.safe_load(
        isthmus("get", "telemetry", "namespace-no-log", "-n", "production", "-o", "yaml").stdout
    )
    assert stored["apiVersion"] == "telemetry.istio.io/v1"
    assert stored["spec"] == {"accessLogging": [{"disabled": True}]}
    changed = isthmus("apply", "-f", write(tmp_path / "t2.yaml", TELEMETRY + "  tracing: [{}]\n"))
    assert changed.exit_code == 0, changed.output
    assert lines(changed.stdout) == ["telemetry.telemetry.istio.io/namespace-no-log configured"]
    deleted = isthmus("delete", "telemetries", "namespace-no-log", "-n", "production")
    assert deleted.exit_code == 0, deleted.output
    assert lines(deleted.stdout) == ['telemetry.telemetry.istio.io "namespace-no-log" deleted']
    with DaemonClient(daemon.home) as client:
        assert client.get("Telemetry", "production") == []


def test_telemetry_refusal_names_the_field(
    daemon: Daemon, isthmus: Isthmus, tmp_path: Path
) -> None:
    bad = TELEMETRY.replace("  - disabled: true", "  - providers: [{name: otel}]")
    result = isthmus("apply", "-f", write(tmp_path / "telemetry.yaml", bad))
    assert result.exit_code == 1
    (line,) = lines(result.stderr)
    assert line.endswith(
        "Telemetry production/namespace-no-log: spec.accessLogging[0].providers[0].name: "
        'provider "otel" is not supported yet: isthmus has no meshConfig extensionProviders; '
        "use envoy (Istio's built-in provider) or leave providers out"
    )
    with DaemonClient(daemon.home) as client:
        assert client.get("Telemetry", "production") == []


# --- the daemon and its hooks -------------------------------------------------------


def test_objects_survive_a_daemon_restart(home: MeshHome, isthmus: Isthmus, tmp_path: Path) -> None:
    first = Daemon(home).start()
    try:
        assert isthmus("apply", "-f", write(tmp_path / "m.yaml", MESH)).exit_code == 0
    finally:
        first.stop()
    second = Daemon(home).start()
    try:
        result = isthmus("get", "vs", "-A")
        assert [row.split()[1] for row in lines(result.stdout)[1:]] == ["reviews"]
        applied = isthmus("apply", "-f", write(tmp_path / "n.yaml", vs("new")))
        assert applied.exit_code == 0
        with DaemonClient(home) as client:
            assert client.healthz()["revision"] == 4
    finally:
        second.stop()


def test_cross_object_validation_hook_refuses_apply(home: MeshHome, tmp_path: Path) -> None:
    def one_vs_per_host(objects: Sequence[LoadedObject]) -> list[str]:
        hosts = [o.body["spec"]["hosts"][0] for o in objects if o.key[0] == "VirtualService"]
        return [f"host {h} has two VirtualServices" for h in set(hosts) if hosts.count(h) > 1]

    async def hello(_: web.Request) -> web.Response:
        return web.json_response({"hello": "lead"})

    hooks = ApiHooks(validate_apply=one_vs_per_host, extra_routes=[web.get("/v1/hello", hello)])
    daemon = Daemon(home, hooks).start()
    try:
        path = write(tmp_path / "two.yaml", vs("a", host="shop") + "---\n" + vs("b", host="shop"))
        result = CliRunner().invoke(cli, ["--home", str(home.root), "apply", "-f", path])
        assert result.exit_code == 1
        assert lines(result.stderr) == ["host shop has two VirtualServices"]
        with DaemonClient(home) as client:
            assert client.get() == []
            assert client.request("GET", "/v1/hello") == {"hello": "lead"}
    finally:
        daemon.stop()


def test_api_errors_are_json_lines(daemon: Daemon) -> None:
    transport = httpx.HTTPTransport(uds=str(daemon.home.socket))
    with httpx.Client(transport=transport, base_url="http://isthmusd") as http:
        unknown = http.get("/v1/nothing")
        assert unknown.status_code == 404
        assert unknown.json() == {"errors": ["GET /v1/nothing: Not Found"]}
        garbled = http.post("/v1/apply", content=b"{not json")
        assert garbled.status_code == 400
        assert garbled.json()["errors"][0].startswith("request body is not JSON")
        shapeless = http.post("/v1/apply", json={"documents": [{"text": 1}]})
        assert shapeless.status_code == 400
        empty = http.post("/v1/apply", json={"documents": []})
        assert empty.status_code == 422
        assert empty.json() == {"errors": ["no objects passed to apply"]}
        keys = http.request("DELETE", "/v1/objects", json={"keys": [["VirtualService", "x"]]})
        assert keys.status_code == 400


def test_client_raises_daemon_error_with_lines(daemon: Daemon) -> None:
    with DaemonClient(daemon.home) as client, pytest.raises(DaemonError) as info:
        client.delete_keys([("VirtualService", "default", "a"), ("Gateway", "x", "b")])
    assert info.value.status == 404
    assert info.value.lines == [
        "VirtualService default/a not found",
        "Gateway x/b not found",
    ]


def test_stopped_daemon_removes_its_socket_and_a_stale_one_is_replaced(home: MeshHome) -> None:
    first = Daemon(home).start()
    first.stop()
    assert not home.socket.exists()
    home.socket.touch()  # left behind by a crash
    second = Daemon(home).start()
    try:
        with DaemonClient(home) as client:
            assert client.healthz()["status"] == "ok"
        assert home.socket.stat().st_mode & 0o777 == 0o600
    finally:
        second.stop()


def test_second_daemon_on_the_same_home_is_refused(daemon: Daemon) -> None:
    with pytest.raises(RuntimeError, match="already running"):
        Daemon(daemon.home).start()
    with DaemonClient(daemon.home) as client:  # the first one still serves
        assert client.healthz()["status"] == "ok"


# --- the installed script, as a user runs it ----------------------------------------


def run_script(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ISTHMUS), *args], input=input, capture_output=True, text=True, timeout=60
    )


def test_script_without_daemon_prints_one_line(home: MeshHome) -> None:
    result = run_script("--home", str(home.root), "get", "vs")
    assert result.returncode == 1
    assert result.stdout == ""
    assert lines(result.stderr) == [
        f"error: isthmusd is not running at {home.root} "
        f"(start it with `isthmus daemon --home {home.root}` or `isthmus up`)"
    ]


def test_script_usage_error_is_one_line(home: MeshHome) -> None:
    result = run_script("--home", str(home.root), "apply")
    assert result.returncode == 1
    (line,) = lines(result.stderr)
    assert line.startswith("error: Missing option '-f'")
    assert "isthmus apply --help" in line


def test_script_applies_and_reads_back(daemon: Daemon, tmp_path: Path) -> None:
    applied = run_script("--home", str(daemon.home.root), "apply", "-f", "-", input=MESH)
    assert applied.returncode == 0, applied.stderr
    assert len(lines(applied.stdout)) == 3
    got = run_script("--home", str(daemon.home.root), "get", "dr", "-A", "-o", "yaml")
    assert got.returncode == 0, got.stderr
    document: dict[str, Any] = yaml.safe_load(got.stdout)
    assert [i["spec"]["host"] for i in document["items"]] == ["reviews"]
