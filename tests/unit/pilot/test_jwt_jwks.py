"""The JWKS check (`api.jwks.jwks_error`) agrees with Envoy: every key set it accepts is one
Envoy's jwt_authn loads, and every one it refuses would make Envoy refuse the listener."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)

from isthmus.api.jwks import jwks_error
from isthmus.api.request_authentication import JWTRule
from isthmus.pilot.envoy.http_connection_manager import inline_connection_manager
from isthmus.pilot.envoy.listener import http_chain, socket_address
from isthmus.pilot.envoy.typed import pack
from isthmus.pilot.security import jwt
from isthmus.testing.jwt import RsaIssuer, b64url
from isthmus.testing.validate import EnvoyRejected, validate_resources

RSA = RsaIssuer("a").jwk()
_EC = ec.generate_private_key(ec.SECP256R1()).public_key().public_numbers()
EC = {
    "kty": "EC",
    "crv": "P-256",
    "x": b64url(_EC.x.to_bytes(32, "big")),
    "y": b64url(_EC.y.to_bytes(32, "big")),
}
_P384 = ec.generate_private_key(ec.SECP384R1()).public_key().public_numbers()
EC384 = {
    "kty": "EC",
    "alg": "ES384",
    "x": b64url(_P384.x.to_bytes(48, "big")),
    "y": b64url(_P384.y.to_bytes(48, "big")),
}
OKP = {
    "kty": "OKP",
    "crv": "Ed25519",
    "x": b64url(ed25519.Ed25519PrivateKey.generate().public_key().public_bytes_raw()),
}
OCT = {"kty": "oct", "alg": "HS256", "k": b64url(b"secret-secret-secret")}


def keys(*entries: object) -> str:
    return json.dumps({"keys": list(entries)})


CORPUS: dict[str, str] = {
    "rsa": keys(RSA),
    "rsa-exponent-3": keys({**RSA, "e": b64url(b"\x03")}),
    "rsa-exponent-5": keys({**RSA, "e": b64url(b"\x05")}),
    "rsa-alg-ps256": keys({**RSA, "alg": "PS256"}),
    "rsa-alg-es256": keys({**RSA, "alg": "ES256"}),
    "rsa-n-missing": keys({k: v for k, v in RSA.items() if k != "n"}),
    "rsa-n-number": keys({**RSA, "n": 5}),
    "rsa-n-standard-base64": keys({**RSA, "n": RSA["n"][:-4] + "+/+/"}),
    "rsa-padded": keys({**RSA, "e": "AQAB", "n": RSA["n"] + "=" * (-len(RSA["n"]) % 4)}),
    "ec": keys(EC),
    "ec-no-crv-no-alg": keys({k: v for k, v in EC.items() if k != "crv"}),
    "ec-384-by-alg": keys(EC384),
    "ec-alg-crv-mismatch": keys({**EC, "alg": "ES384"}),
    "ec-unknown-curve": keys({**EC, "crv": "P-192"}),
    "ec-off-curve": keys({**EC, "y": EC["x"]}),
    "ec-y-missing": keys({k: v for k, v in EC.items() if k != "y"}),
    "okp": keys(OKP),
    "okp-short": keys({**OKP, "x": b64url(b"short")}),
    "okp-x25519": keys({**OKP, "crv": "X25519"}),
    "oct": keys(OCT),
    "oct-alg-rs256": keys({**OCT, "alg": "RS256"}),
    "kty-missing": keys({"n": RSA["n"], "e": "AQAB"}),
    "kty-number": keys({**RSA, "kty": 1}),
    "kty-unknown": keys({**RSA, "kty": "XYZ"}),
    "good-then-bad": keys(RSA, {**RSA, "e": b64url(b"\x05")}),
    "bad-then-good": keys({"kty": "XYZ"}, RSA),
    "non-objects-skipped": keys(1, "x", RSA),
    "only-non-objects": keys(1, "x"),
    "no-keys": keys(),
    "keys-not-a-list": json.dumps({"keys": RSA}),
    "no-keys-field": json.dumps(RSA),
    "top-level-list": json.dumps([RSA]),
    "not-json": "{keys:",
    "istio-fail-closed": jwt.PUBLIC_ONLY_JWKS,
}


def envoy_accepts(jwks: str) -> bool:
    authn = jwt.jwt_authn_config([JWTRule(issuer="a", jwks=jwks)], {})
    assert authn is not None
    envoy_filter = hcm.HttpFilter(name="envoy.filters.http.jwt_authn", typed_config=pack(authn))
    manager = inline_connection_manager(
        "inbound_0.0.0.0_8080", route_pb2.RouteConfiguration(name="r"), [envoy_filter]
    )
    listener = listener_pb2.Listener(name="inbound", address=socket_address("0.0.0.0", 15006))
    listener.filter_chains.append(http_chain("inbound_http", manager))
    try:
        validate_resources(listeners=[listener])
    except EnvoyRejected as rejected:
        assert "jwks" in rejected.message.lower(), rejected.message
        return False
    return True


@pytest.mark.envoy
@pytest.mark.parametrize("case", sorted(CORPUS))
def test_the_check_agrees_with_envoy(case: str) -> None:
    text = CORPUS[case]

    assert (jwks_error(text) is None) == envoy_accepts(text), jwks_error(text)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("rsa-exponent-5", "jwks key 0: RSA key exponent 5 is not 3 or 65537"),
        ("ec-off-curve", "jwks key 0: EC key: (x, y) is not a point on the curve"),
        ("kty-unknown", """jwks key 0: "kty" 'XYZ' is not supported (use RSA, EC, oct or OKP)"""),
        ("only-non-objects", "jwks has no usable key"),
        ("keys-not-a-list", 'jwks "keys" must be a list'),
        ("top-level-list", "jwks must be a JSON object"),
    ],
)
def test_refusals_say_why(case: str, expected: str) -> None:
    assert jwks_error(CORPUS[case]) == expected


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("good-then-bad", "jwks key 1: RSA key exponent 5 is not 3 or 65537"),
        ("bad-then-good", """jwks key 0: "kty" 'XYZ' is not supported (use RSA, EC, oct or OKP)"""),
        ("rsa", None),
        ("non-objects-skipped", None),
    ],
)
def test_a_user_written_set_may_not_hold_a_key_envoy_would_skip(
    case: str, expected: str | None
) -> None:
    assert jwks_error(CORPUS[case], every_key=True) == expected
