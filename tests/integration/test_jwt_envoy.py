"""RequestAuthentication and JWT-based AuthorizationPolicy against a real Envoy.

isthmus's own translation (`pilot.security.jwt.jwt_authn_filter`, `http_rbac_filters`) goes
onto the inbound HttpConnectionManager isthmus builds (`inline_connection_manager`), one
listener per policy set, in one static Envoy. Key sets come inline and from jwksUris (and
OpenID discovery) served by a loopback HTTP server and fetched by isthmusd's own resolver
(`daemon.jwks_fetch.resolve_jwks`). Tokens are RS256 JWTs signed here with `cryptography`.

The route answers every request itself (200) and echoes, in response headers, what the app
would have received: the payload and claim headers jwt_authn adds, and the Authorization
header it removes after verifying. Expected outcomes are Istio's (RequestAuthentication
reference and the "Authorization with JWT" task): an invalid token is refused with 401 (a
valid one for another audience with 403, Envoy's answer), a request without one passes
unauthenticated unless an AuthorizationPolicy requires `requestPrincipals`, which then
answers 403. Where Envoy answers 200 or 403, isthmus's
evaluator (`pilot.authz.evaluate`) must give the same decision for the verified payload.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import textwrap
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2

from isthmus.api.authorization import AuthorizationPolicy
from isthmus.api.loader import load_documents
from isthmus.api.request_authentication import RequestAuthentication
from isthmus.daemon.jwks_fetch import client_session, resolve_jwks
from isthmus.model.jwks import JwksSource, jwks_sources
from isthmus.model.snapshot import ConfigEntry
from isthmus.pilot.authz.evaluate import Request, evaluate
from isthmus.pilot.authz.rbac import http_rbac_filters
from isthmus.pilot.envoy.http_connection_manager import inline_connection_manager
from isthmus.pilot.security import jwt
from isthmus.testing.envoy import EnvoyProcess
from isthmus.testing.jwt import JwksServer, RsaIssuer, b64url
from isthmus.testing.ports import LOOPBACK, free_port
from isthmus.testing.protojson import message_to_dict

pytestmark = pytest.mark.envoy

TRUST_DOMAIN = "cluster.local"
SOCKET_TIMEOUT_S = 10.0  # guards a hung connection only
ECHOED = {
    "x-seen-payload": "x-jwt-payload",
    "x-seen-sub": "x-jwt-sub",
    "x-seen-authorization": "authorization",
}

ISSUER = RsaIssuer("https://issuer.example.com", kid="good")
IMPOSTOR = RsaIssuer(ISSUER.issuer, kid="good")  # same issuer and kid, another key
REMOTE = RsaIssuer("https://remote.example.com", kid="remote")
UNREACHABLE = RsaIssuer("https://broken.example.com", kid="broken")

INLINE_RULE = f"""
- issuer: {ISSUER.issuer}
  audiences: [inventory]
  jwks: '{ISSUER.jwks()}'
  outputPayloadToHeader: x-jwt-payload
  outputClaimToHeaders: [{{header: x-jwt-sub, claim: sub}}]
"""
REQUIRE_JWT = """
action: ALLOW
rules: [{from: [{source: {requestPrincipals: ["*"]}}]}]
"""
ADMINS_ONLY = """
action: ALLOW
rules: [{when: [{key: "request.auth.claims[groups]", values: [admin]}]}]
"""
WRITE_SCOPE = """
action: ALLOW
rules: [{when: [{key: "request.auth.claims[scope]", values: [write]}]}]
"""


def document(kind: str, name: str, spec: str) -> str:
    body = textwrap.indent(textwrap.dedent(spec).strip("\n"), "  ")
    return (
        f"apiVersion: security.istio.io/v1\nkind: {kind}\n"
        f"metadata: {{name: {name}, namespace: production}}\nspec:\n{body}\n"
    )


@dataclass(frozen=True)
class Case:
    """One listener: its RequestAuthentication's jwtRules and AuthorizationPolicy specs."""

    rules: str
    policies: tuple[str, ...] = ()


def cases(server: JwksServer) -> dict[str, Case]:
    remote_rules = f"""
- issuer: {REMOTE.issuer}
  jwksUri: {server.url("/remote-jwks")}
- issuer: {server.url("")}
- issuer: {UNREACHABLE.issuer}
  jwksUri: {server.url("/broken")}
"""
    return {
        "inline": Case(INLINE_RULE),
        "require": Case(INLINE_RULE, (REQUIRE_JWT,)),
        "claims": Case(INLINE_RULE, (ADMINS_ONLY,)),
        "scope": Case(INLINE_RULE, (WRITE_SCOPE,)),
        "remote": Case(INLINE_RULE + remote_rules),
    }


@dataclass
class Listener:
    port: int
    authentication: list[ConfigEntry[RequestAuthentication]]
    policies: list[ConfigEntry[AuthorizationPolicy]]
    rbac: list[Any] = field(default_factory=list)


def entries(text: str) -> list[ConfigEntry[Any]]:
    out: list[ConfigEntry[Any]] = []
    for revision, loaded in enumerate(load_documents(text, "test.yaml"), start=1):
        meta = loaded.resource.metadata
        out.append(ConfigEntry(meta.name, meta.namespace or "", loaded.resource, revision))
    return out


async def fetch(sources: Mapping[JwksSource, Any]) -> dict[JwksSource, str | None]:
    async with client_session() as session:
        return await resolve_jwks(session, sources)


def route_config() -> route_pb2.RouteConfiguration:
    """Every request answered by Envoy itself; response headers echo request headers."""
    echo = [
        base_pb2.HeaderValueOption(header=base_pb2.HeaderValue(key=name, value=f"%REQ({header})%"))
        for name, header in ECHOED.items()
    ]
    route = rc.Route(
        match=rc.RouteMatch(prefix="/"),
        direct_response=rc.DirectResponseAction(status=200),
        response_headers_to_add=echo,
    )
    host = rc.VirtualHost(name="app", domains=["*"], routes=[route])
    return route_pb2.RouteConfiguration(name="inbound|8080||", virtual_hosts=[host])


@dataclass
class Mesh:
    envoy: EnvoyProcess
    listeners: dict[str, Listener]
    server: JwksServer
    fetched: dict[JwksSource, str | None]
    discovered: RsaIssuer


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    with JwksServer() as server:
        discovered = RsaIssuer(server.url(""), kid="discovered")
        server.routes.update(
            {
                "/remote-jwks": (200, REMOTE.jwks()),
                "/discovered-jwks": (200, discovered.jwks()),
                "/.well-known/openid-configuration": (
                    200,
                    json.dumps(
                        {"issuer": server.url(""), "jwks_uri": server.url("/discovered-jwks")}
                    ),
                ),
                "/broken": (500, "unavailable"),
            }
        )
        listeners: dict[str, Listener] = {}
        for name, case in cases(server).items():
            text = document("RequestAuthentication", name, f"jwtRules:\n{case.rules}")
            for position, spec in enumerate(case.policies):
                text += "---\n" + document("AuthorizationPolicy", f"{name}-{position}", spec)
            loaded = entries(text)
            listeners[name] = Listener(
                free_port(),
                [e for e in loaded if isinstance(e.resource, RequestAuthentication)],
                [e for e in loaded if isinstance(e.resource, AuthorizationPolicy)],
            )
        wanted = jwks_sources(e.resource for ls in listeners.values() for e in ls.authentication)
        fetched = asyncio.run(fetch(wanted))
        bootstrap_listeners = []
        for name, listener in listeners.items():
            authn = jwt.jwt_authn_filter(listener.authentication, fetched)
            assert authn is not None
            listener.rbac = http_rbac_filters(listener.policies, TRUST_DOMAIN)
            manager = inline_connection_manager(
                f"inbound_{name}", route_config(), [authn, *listener.rbac]
            )
            address = {"socket_address": {"address": LOOPBACK, "port_value": listener.port}}
            bootstrap_listeners.append(
                {
                    "name": name,
                    "address": address,
                    "filter_chains": [{"filters": [message_to_dict(manager)]}],
                }
            )
        workdir: Path = tmp_path_factory.mktemp("jwt-envoy")
        bootstrap = {"static_resources": {"listeners": bootstrap_listeners}}
        with EnvoyProcess(bootstrap, workdir, "inbound") as envoy:
            envoy.wait_ready()
            yield Mesh(envoy, listeners, server, fetched, discovered)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def send(port: int, token: str | None = None, **extra: str) -> Answer:
    headers = {"host": "inventory", **extra}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=SOCKET_TIMEOUT_S)
    try:
        connection.request("GET", "/items", headers=headers)
        response = connection.getresponse()
        body = response.read()
        answer_headers = {name.lower(): value for name, value in response.getheaders()}
        return Answer(response.status, answer_headers, body)
    finally:
        connection.close()


def alice(**extra: Any) -> dict[str, Any]:
    return ISSUER.claims("alice", **{"aud": "inventory", "groups": ["admin"], **extra})


def tampered(token: str) -> str:
    header, _, signature = token.split(".")
    forged = b64url(json.dumps(alice(groups=["admin", "root"])).encode())
    return f"{header}.{forged}.{signature}"


@dataclass(frozen=True)
class Token:
    """A token and, if it verifies, the claims jwt_authn will record for RBAC."""

    text: str | None
    verified: dict[str, Any] | None


def valid(issuer: RsaIssuer, claims: dict[str, Any]) -> Token:
    return Token(issuer.sign(claims), claims)


def invalid(text: str) -> Token:
    return Token(text, None)


NOW = int(time.time())
TOKENS: dict[str, Token] = {
    "valid": valid(ISSUER, alice()),
    "valid-groups-string": valid(ISSUER, alice(groups="admin")),
    "valid-not-admin": valid(ISSUER, alice(groups=["dev"])),
    "valid-scopes": valid(ISSUER, alice(scope="read write")),
    "missing": Token(None, None),
    "expired": invalid(ISSUER.sign(alice(iat=NOW - 7200, exp=NOW - 3600))),
    "wrong-issuer": invalid(ISSUER.sign({**alice(), "iss": "https://evil.example.com"})),
    "wrong-audience": invalid(ISSUER.sign(alice(aud="orders"))),
    "no-audience": invalid(ISSUER.sign(ISSUER.claims("alice"))),
    "bad-signature": invalid(IMPOSTOR.sign(alice())),
    "tampered": invalid(tampered(ISSUER.sign(alice()))),
    "garbage": invalid("not-a-jwt"),
}

APP, JWT, RBAC = "app", "jwt_authn", "rbac"  # who answered

# (listener, token) -> (status, who answered), as a sidecar does. Envoy's jwt_authn answers
# 401 for a token that fails verification, but 403 for a valid token whose audience is not
# allowed (JwtAudienceNotAllowed), so Istio does too.
EXPECTED: dict[tuple[str, str], tuple[int, str]] = {
    ("inline", "valid"): (200, APP),
    ("inline", "missing"): (200, APP),
    ("inline", "expired"): (401, JWT),
    ("inline", "wrong-issuer"): (401, JWT),
    ("inline", "wrong-audience"): (403, JWT),
    ("inline", "no-audience"): (403, JWT),
    ("inline", "bad-signature"): (401, JWT),
    ("inline", "tampered"): (401, JWT),
    ("inline", "garbage"): (401, JWT),
    ("require", "valid"): (200, APP),
    ("require", "missing"): (403, RBAC),
    ("require", "expired"): (401, JWT),
    ("require", "bad-signature"): (401, JWT),
    ("claims", "valid"): (200, APP),
    ("claims", "valid-groups-string"): (200, APP),
    ("claims", "valid-not-admin"): (403, RBAC),
    ("claims", "missing"): (403, RBAC),
    ("claims", "wrong-audience"): (403, JWT),
    # `scope` is space-delimited: "read write" is matched as the list [read, write].
    ("scope", "valid-scopes"): (200, APP),
    ("scope", "valid"): (403, RBAC),
    ("remote", "valid"): (200, APP),
    ("remote", "missing"): (200, APP),
    ("remote", "wrong-issuer"): (401, JWT),
    ("remote", "bad-signature"): (401, JWT),
}


def params(keys: list[tuple[str, str]]) -> list[Any]:
    return [pytest.param(listener, token, id=f"{listener}:{token}") for listener, token in keys]


@pytest.mark.parametrize(("listener", "token"), params(sorted(EXPECTED)))
def test_envoy_answers_as_istio(mesh: Mesh, listener: str, token: str) -> None:
    case = TOKENS[token]
    answer = send(mesh.listeners[listener].port, case.text)

    status, by = EXPECTED[(listener, token)]
    assert answer.status == status, answer
    if by == JWT:
        assert 'error="invalid_token"' in answer.headers["www-authenticate"], answer
        expected_body = b"Audiences in Jwt are not allowed" if status == 403 else b"Jwt"
        assert answer.body.startswith(expected_body), answer
    elif by == RBAC:
        assert answer.body == b"RBAC: access denied", answer
    assert mesh.envoy.running


DECIDED_BY_RBAC = sorted(key for key, (_, by) in EXPECTED.items() if by != JWT)


@pytest.mark.parametrize(("listener", "token"), params(DECIDED_BY_RBAC))
def test_the_evaluator_agrees_with_envoy(mesh: Mesh, listener: str, token: str) -> None:
    case = TOKENS[token]
    payload = None
    if case.verified is not None:
        payload = jwt.metadata_payload(case.verified, jwt.DEFAULT_SPACE_DELIMITED_CLAIMS)
    decision = evaluate(mesh.listeners[listener].rbac, Request(jwt_payload=payload))

    assert decision.allowed == (send(mesh.listeners[listener].port, case.text).status == 200)


def test_the_key_sets_were_fetched_by_isthmusd_resolver(mesh: Mesh) -> None:
    server = mesh.server
    assert mesh.fetched == {
        JwksSource(server.url("/.well-known/openid-configuration"), True): mesh.discovered.jwks(),
        JwksSource(server.url("/broken")): None,
        JwksSource(server.url("/remote-jwks")): REMOTE.jwks(),
    }


def test_a_jwks_uri_key_verifies(mesh: Mesh) -> None:
    token = REMOTE.sign(REMOTE.claims("bob"))

    assert send(mesh.listeners["remote"].port, token).status == 200


def test_an_openid_discovered_key_verifies(mesh: Mesh) -> None:
    token = mesh.discovered.sign(mesh.discovered.claims("carol"))

    assert send(mesh.listeners["remote"].port, token).status == 200


def test_an_unfetchable_key_set_fails_closed(mesh: Mesh) -> None:
    token = UNREACHABLE.sign(UNREACHABLE.claims("dave"))

    assert send(mesh.listeners["remote"].port, token).status == 401
    assert send(mesh.listeners["remote"].port).status == 200  # no token: still unauthenticated


def test_the_app_sees_payload_and_claim_headers_and_no_token(mesh: Mesh) -> None:
    claims = alice()
    answer = send(mesh.listeners["inline"].port, ISSUER.sign(claims))

    assert answer.status == 200
    payload = answer.headers["x-seen-payload"]
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert decoded == claims
    assert answer.headers["x-seen-sub"] == "alice"
    # forwardOriginalToken is false: jwt_authn removed the verified token.
    assert "x-seen-authorization" not in answer.headers


def test_without_a_token_the_app_sees_no_jwt_headers(mesh: Mesh) -> None:
    # Basic credentials are no JWT: jwt_authn leaves them, and the echo shows they arrive.
    answer = send(mesh.listeners["inline"].port, authorization="Basic YWxpY2U6cHc=")

    assert answer.status == 200
    assert answer.headers["x-seen-authorization"] == "Basic YWxpY2U6cHc="
    assert "x-seen-payload" not in answer.headers and "x-seen-sub" not in answer.headers


def test_a_client_cannot_forge_the_claim_headers(mesh: Mesh) -> None:
    answer = send(mesh.listeners["inline"].port, **{"x-jwt-sub": "root", "x-jwt-payload": "e30"})

    assert answer.status == 200  # no token, and jwt_authn removed the client's copies
    assert "x-seen-sub" not in answer.headers and "x-seen-payload" not in answer.headers
    forged = send(mesh.listeners["inline"].port, ISSUER.sign(alice()), **{"x-jwt-sub": "root"})
    assert forged.headers["x-seen-sub"] == "alice"  # a verified token's claim replaces it
