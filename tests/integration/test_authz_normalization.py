"""The authorization bypass regression set, against real Envoy, in every pathNormalization mode.

Two DENY AuthorizationPolicies go through isthmus's real translation
(`http_rbac_filters`) and onto the exact inbound HttpConnectionManager isthmus builds
(`inline_connection_manager`), one listener per MeshConfig pathNormalization mode, all in one
static Envoy that runs with the sidecar bootstrap's runtime. The route answers every request
itself (200, body `app`) and reports, in `x-app-path`, the :path the application would have
received after Envoy's normalization.

Requests are written as raw HTTP/1.1 on a socket, so the request-target bytes and the Host
header are exactly what an attacker would send. Outcomes: 403 with `RBAC: access denied` (the
DENY policy matched), 200 (allowed; for a deny target that is a bypass), 400 (Envoy rejected
the request before authorization).

Expectations come from Istio's documentation, cited per row:
- [NORM §n]  https://istio.io/latest/docs/reference/config/security/normalization/ section n
  (1 %HH decoding, 2 backslash, 3 multiple slashes, 4 dot segments, 5 query).
- [BP]       https://istio.io/latest/docs/ops/best-practices/security/#authorization-policies
  ("Customize your system on path normalization": NONE forwards as-is; BASE is RFC 3986 plus
  backslash -> slash; MERGE_SLASHES merges slashes after BASE; DECODE_AND_MERGE_SLASHES first
  decodes %2F %2f %5C %5c. "Example custom normalization (case normalization)": paths compare
  case-sensitively unless the user adds a filter that lowercases them.)
- [2021-008] ISTIO-SECURITY-2021-008 (CVE-2021-39156 fragments are removed from the path before
  authorization and routing; CVE-2021-39155 / GHSA-7774-7vr3-cc8j hosts compare
  case-insensitively) and its "Required update for authorization policies": `hosts` match the
  exact string, so users add `host:*` themselves to cover `host:port`.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from isthmus.agent.bootstrap import sidecar_bootstrap
from isthmus.agent.identity import ProxyIdentity
from isthmus.api.authorization import AuthorizationPolicy
from isthmus.api.loader import load_documents
from isthmus.model.snapshot import ConfigEntry
from isthmus.pilot.authz.rbac import HTTP_RBAC_FILTER, http_rbac_filters
from isthmus.pilot.envoy.http_connection_manager import inline_connection_manager
from isthmus.pilot.envoy.path_normalization import apply_path_normalization, envoy_path
from isthmus.testing.envoy import EnvoyProcess
from isthmus.testing.ports import LOOPBACK, free_port
from isthmus.testing.protojson import message_to_dict

pytestmark = pytest.mark.envoy

TRUST_DOMAIN = "cluster.local"
APP_HOST = "app.production.svc.cluster.local"
APP_BODY = b"app"
APP_PATH_HEADER = "x-app-path"
RBAC_DENIED_BODY = b"RBAC: access denied"
# Only guards against a hung connection; no outcome depends on how long anything takes.
SOCKET_TIMEOUT_S = 10.0

POLICIES_YAML = """\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: production}
spec:
  action: DENY
  rules:
  - to:
    - operation:
        paths: ["/admin", "/admin/*"]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-host, namespace: production}
spec:
  action: DENY
  rules:
  - to:
    - operation:
        hosts: ["secret.example.com"]
"""

MODES = ("NONE", "BASE", "MERGE_SLASHES", "DECODE_AND_MERGE_SLASHES")

# The HCM path fields Istio sets per mode (pilot/pkg/networking/core/listener_builder.go,
# buildHTTPConnectionManager: "Setup normalization"): (normalize_path, merge_slashes,
# path_with_escaped_slashes_action).
ISTIO_HCM_PATH_SETTINGS: dict[str, tuple[bool, bool, str]] = {
    "NONE": (False, False, "KEEP_UNCHANGED"),
    "BASE": (True, False, "KEEP_UNCHANGED"),
    "MERGE_SLASHES": (True, True, "KEEP_UNCHANGED"),
    "DECODE_AND_MERGE_SLASHES": (True, True, "UNESCAPE_AND_FORWARD"),
}


@dataclass(frozen=True)
class Outcome:
    status: int
    app_path: str | None = None  # for 200: the :path the application receives


DENIED = Outcome(403)
REJECTED = Outcome(400)


def allowed(app_path: str) -> Outcome:
    return Outcome(200, app_path)


@dataclass(frozen=True)
class Row:
    target: str  # the request-target exactly as sent
    host: str
    # expected outcome in NONE, BASE, MERGE_SLASHES, DECODE_AND_MERGE_SLASHES
    outcomes: tuple[Outcome, Outcome, Outcome, Outcome]

    def expected(self, mode: str) -> Outcome:
        return self.outcomes[MODES.index(mode)]


def _rows() -> list[Row]:
    a = allowed
    return [
        # [NORM §4] dot segments resolved from BASE up; [BP] NONE evaluates and forwards as-is.
        Row("/items/../admin", APP_HOST, (a("/items/../admin"), DENIED, DENIED, DENIED)),
        # [NORM §1] %2E -> '.' from BASE up (once), then [NORM §4] resolves the '..'.
        Row("/items/%2E%2E/admin", APP_HOST, (a("/items/%2E%2E/admin"), DENIED, DENIED, DENIED)),
        # [NORM §1] %2F is decoded only by DECODE_AND_MERGE_SLASHES ([BP]: BASE and MERGE_SLASHES
        # keep it, the CVE-2021-31920 case); decoded, [NORM §4] resolves the '..'.
        Row(
            "/items%2F..%2Fadmin",
            APP_HOST,
            (
                a("/items%2F..%2Fadmin"),
                a("/items%2F..%2Fadmin"),
                a("/items%2F..%2Fadmin"),
                DENIED,
            ),
        ),
        # Same, lower case: [NORM §1] decoding is case-insensitive ("%2f").
        Row(
            "/items%2f..%2fadmin",
            APP_HOST,
            (
                a("/items%2f..%2fadmin"),
                a("/items%2f..%2fadmin"),
                a("/items%2f..%2fadmin"),
                DENIED,
            ),
        ),
        # [NORM §1] %5C is decoded only by DECODE_AND_MERGE_SLASHES, then [NORM §2] '\' -> '/'
        # and [NORM §4] resolves the '..'.
        Row(
            "/items%5C..%5Cadmin",
            APP_HOST,
            (
                a("/items%5C..%5Cadmin"),
                a("/items%5C..%5Cadmin"),
                a("/items%5C..%5Cadmin"),
                DENIED,
            ),
        ),
        # [NORM §2] raw '\' -> '/' from BASE up ([BP] "\da is normalized to /da"), then §4.
        Row("/items\\..\\admin", APP_HOST, (a("/items\\..\\admin"), DENIED, DENIED, DENIED)),
        # [NORM §3] slashes are merged only from MERGE_SLASHES up ([BP], CVE-2021-31920).
        Row("//admin", APP_HOST, (a("//admin"), a("//admin"), DENIED, DENIED)),
        # [2021-008] CVE-2021-39156: the fragment is removed before authorization, in every mode.
        Row("/admin#x", APP_HOST, (DENIED,) * 4),
        # [2021-008] the same stripping lets a harmless fragment through, the app sees /items.
        Row("/items#x", APP_HOST, (a("/items"),) * 4),
        # [BP] case normalization needs a user filter: paths compare case-sensitively, and
        # [NORM §1] only decodes %41-%5a / %61-%7a, it never folds case.
        Row("/ADMIN", APP_HOST, (a("/ADMIN"),) * 4),
        # [NORM §1] %61 -> 'a' from BASE up; [BP] NONE forwards as-is.
        Row("/%61dmin", APP_HOST, (a("/%61dmin"), DENIED, DENIED, DENIED)),
        # [NORM §5] the query is ignored when comparing paths, in every mode (not a mode option).
        Row("/admin?x=1", APP_HOST, (DENIED,) * 4),
        # [NORM §4] /admin/../items is /items from BASE up: allowed, and the app sees /items.
        # [BP] NONE evaluates the raw path, which starts with "/admin/": denied.
        Row("/admin/../items", APP_HOST, (DENIED, a("/items"), a("/items"), a("/items"))),
        # [NORM §1] says %00 is "always rejected with HTTP code 400". Envoy rejects it only while
        # normalizing (normalize_path), which NONE turns off; Istio's NONE sets the very same HCM
        # fields (listener_builder.go), so an Istio sidecar in NONE forwards it too.
        Row("/admin%00", APP_HOST, (a("/admin%00"), REJECTED, REJECTED, REJECTED)),
        # Hosts, independent of the path mode: the deny-host rule on an allowed path.
        Row("/items", "secret.example.com", (DENIED,) * 4),
        # [2021-008] GHSA-7774-7vr3-cc8j: hosts compare case-insensitively.
        Row("/items", "SECRET.example.com", (DENIED,) * 4),
        # [2021-008] hosts match the exact string: `host:port` is not `host`, users must add
        # "secret.example.com:*" themselves. Istio strips no port on the inbound HCM.
        Row("/items", "secret.example.com:80", (a("/items"),) * 4),
        # Exact string too: nothing in Istio's docs strips a trailing dot, and Istio's HCM does
        # not set strip_trailing_host_dot, so "secret.example.com." is another host.
        Row("/items", "secret.example.com.", (a("/items"),) * 4),
    ]


ROWS = _rows()


def _policies() -> list[ConfigEntry[AuthorizationPolicy]]:
    entries: list[ConfigEntry[AuthorizationPolicy]] = []
    for revision, loaded in enumerate(load_documents(POLICIES_YAML, "policy.yaml"), start=1):
        policy = loaded.resource
        assert isinstance(policy, AuthorizationPolicy)
        assert policy.metadata.namespace is not None
        entries.append(
            ConfigEntry(policy.metadata.name, policy.metadata.namespace, policy, revision)
        )
    return entries


def _route_config() -> route_pb2.RouteConfiguration:
    """Every request answered by Envoy itself; the header reports the (normalized) :path.

    A direct_response body is not formatted, response headers are: `%REQ(:PATH)%` is the
    request's :path after the connection manager normalized it, i.e. what an upstream gets.
    """
    report_path = base_pb2.HeaderValueOption(
        header=base_pb2.HeaderValue(key=APP_PATH_HEADER, value="%REQ(:PATH)%")
    )
    answer = rc.DirectResponseAction(
        status=200, body=base_pb2.DataSource(inline_string=APP_BODY.decode())
    )
    route = rc.Route(
        match=rc.RouteMatch(prefix="/"),
        direct_response=answer,
        response_headers_to_add=[report_path],
    )
    host = rc.VirtualHost(name="app", domains=["*"], routes=[route])
    return route_pb2.RouteConfiguration(name="inbound|8080||", virtual_hosts=[host])


def _bootstrap(ports: Mapping[str, int]) -> dict[str, Any]:
    rbac = http_rbac_filters(_policies(), TRUST_DOMAIN)
    routes = _route_config()
    listeners = []
    for mode in MODES:
        manager = inline_connection_manager(
            f"inbound_{mode.lower()}", routes, rbac, path_normalization=mode
        )
        listeners.append(
            {
                "name": mode,
                "address": {"socket_address": {"address": LOOPBACK, "port_value": ports[mode]}},
                "filter_chains": [{"filters": [message_to_dict(manager)]}],
            }
        )
    # The runtime a real isthmus sidecar runs with (it changes e.g. how '#' is handled).
    identity = ProxyIdentity("app-0", "production", LOOPBACK, {}, "default", "app", (8080,))
    runtime = sidecar_bootstrap(identity, "/nonexistent/xds.sock")["layered_runtime"]
    return {"static_resources": {"listeners": listeners}, "layered_runtime": runtime}


@pytest.fixture(scope="module")
def envoy(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[EnvoyProcess, dict[str, int]]]:
    ports = {mode: free_port() for mode in MODES}
    workdir: Path = tmp_path_factory.mktemp("authz-normalization")
    with EnvoyProcess(_bootstrap(ports), workdir, "inbound") as process:
        process.wait_ready()
        yield process, ports


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def send(port: int, target: str, host: str) -> Answer:
    """One raw HTTP/1.1 GET: the request-target and Host bytes go out exactly as given.

    The answer is read up to its Content-Length (every answer here, Envoy's local replies
    included, carries one), not to EOF: Envoy delays closing until the client has.
    """
    request = f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    with socket.create_connection((LOOPBACK, port), timeout=SOCKET_TIMEOUT_S) as connection:
        connection.sendall(request.encode("ascii"))
        received = b""
        while b"\r\n\r\n" not in received:
            received += _receive(connection)
        head, _, body = received.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers["content-length"])
        while len(body) < length:
            body += _receive(connection)
    return Answer(int(status_line.split(" ")[1]), headers, body)


def _receive(connection: socket.socket) -> bytes:
    chunk = connection.recv(65536)
    if not chunk:
        raise ConnectionError("Envoy closed the connection before a complete answer")
    return chunk


def _params() -> list[Any]:
    params = []
    for row in ROWS:
        for mode in MODES:
            label = row.target if row.host == APP_HOST else f"Host={row.host}"
            params.append(pytest.param(mode, row, id=f"{mode}:{label}"))
    return params


@pytest.mark.parametrize(("mode", "row"), _params())
def test_deny_policy_outcome(
    envoy: tuple[EnvoyProcess, dict[str, int]], mode: str, row: Row
) -> None:
    process, ports = envoy
    answer = send(ports[mode], row.target, row.host)
    expected = row.expected(mode)
    seen = (
        f"{mode} {row.target!r} Host={row.host!r}: {answer.status} {answer.headers} {answer.body!r}"
    )
    assert answer.status == expected.status, seen
    if expected.status == 200:
        assert answer.body == APP_BODY, seen
        assert answer.headers.get(APP_PATH_HEADER) == expected.app_path, seen
    elif expected.status == 403:
        assert answer.body == RBAC_DENIED_BODY, seen
    assert process.running
    # `x authz check` computes the same path (None where Envoy answers 400).
    manager = hcm_pb2.HttpConnectionManager()
    apply_path_normalization(manager, mode)
    computed = envoy_path(row.target, manager)
    if answer.status == 400:
        assert computed is None, seen
    else:
        envoys = answer.headers.get(APP_PATH_HEADER) if answer.status == 200 else None
        assert envoys is None or computed == envoys, (computed, seen)


@pytest.mark.parametrize("mode", MODES)
def test_envoy_runs_istios_path_settings_with_rbac_first(
    envoy: tuple[EnvoyProcess, dict[str, int]], mode: str
) -> None:
    """What Envoy actually loaded per listener: Istio's fields for the mode, RBAC first."""
    process, _ports = envoy
    dump = process.config_dump(resource="static_listeners")
    managers = {
        entry["listener"]["name"]: entry["listener"]["filter_chains"][0]["filters"][0][
            "typed_config"
        ]
        for entry in dump["configs"]
    }
    manager = managers[mode]
    loaded = (
        manager.get("normalize_path", False),
        manager.get("merge_slashes", False),
        manager.get("path_with_escaped_slashes_action", "IMPLEMENTATION_SPECIFIC_DEFAULT"),
    )
    assert loaded == ISTIO_HCM_PATH_SETTINGS[mode]
    assert manager["http_filters"][0]["name"] == HTTP_RBAC_FILTER
