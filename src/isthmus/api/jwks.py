"""Is a text a JSON Web Key Set that Envoy's jwt_authn accepts?

Envoy refuses a whole listener whose jwt_authn filter holds a local JWKS it cannot parse,
so a key set is checked here the way Envoy's parser (google/jwt_verify_lib, Jwks::
createFromJwksCore) reads it: a JSON object with a `keys` list whose objects are keys of
type RSA (exponent 3 or 65537), EC (a point on P-256, P-384 or P-521), oct (HMAC) or OKP
(Ed25519); Envoy skips keys it cannot use but needs at least one. A user-written set is
held to more (`every_key`): a key Envoy would skip is a mistake worth reporting, as
Istio's own parser reports it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

_BASE64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")
_EC_CURVES: Mapping[str, tuple[str, ec.EllipticCurve]] = {
    "P-256": ("ES256", ec.SECP256R1()),
    "P-384": ("ES384", ec.SECP384R1()),
    "P-521": ("ES512", ec.SECP521R1()),
}
_HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
_RSA_EXPONENTS = frozenset({3, 65537})
_ED25519_KEY_LENGTH = 32


def jwks_error(text: str, *, every_key: bool = False) -> str | None:
    """Why Envoy would refuse `text` as a JWKS, or None if it accepts it; with `every_key`,
    also why a key Envoy would skip is not usable."""
    try:
        document = json.loads(text)
    except ValueError:
        return "jwks is not valid JSON"
    if not isinstance(document, dict):
        return "jwks must be a JSON object"
    keys = document.get("keys")
    if keys is None:
        return 'jwks has no "keys" field'
    if not isinstance(keys, list):
        return 'jwks "keys" must be a list'
    first_problem: str | None = None
    usable = 0
    for position, key in enumerate(keys):
        if not isinstance(key, dict):
            continue  # Envoy skips entries that are not objects
        problem = jwk_error(key)
        if problem is None:
            usable += 1
        elif first_problem is None:
            first_problem = f"jwks key {position}: {problem}"
    if usable == 0:
        return first_problem or "jwks has no usable key"
    return first_problem if every_key else None


def jwk_error(key: Mapping[str, Any]) -> str | None:
    """Why Envoy would refuse one key of a set, or None."""
    kty = key.get("kty")
    if not isinstance(kty, str):
        return '"kty" must be a string' if "kty" in key else '"kty" is missing'
    alg = key.get("alg")
    alg = alg if isinstance(alg, str) else ""
    check = _KEY_CHECKS.get(kty)
    if check is None:
        return f'"kty" {kty!r} is not supported (use RSA, EC, oct or OKP)'
    return check(key, alg)


def _rsa_error(key: Mapping[str, Any], alg: str) -> str | None:
    if alg and not alg.startswith(("RS", "PS")):
        return f'RSA key with "alg" {alg!r} (must be RS256..RS512 or PS256..PS512)'
    for member in ("n", "e"):
        problem = _member_error(key, member)
        if problem is not None:
            return f"RSA key: {problem}"
    exponent = int.from_bytes(_decode(key["e"]), "big")
    if exponent not in _RSA_EXPONENTS:
        return f"RSA key exponent {exponent} is not 3 or 65537"
    return None


def _ec_error(key: Mapping[str, Any], alg: str) -> str | None:
    if alg and not alg.startswith("ES"):
        return f'EC key with "alg" {alg!r} (must be ES256, ES384 or ES512)'
    crv = key.get("crv", "")
    if not isinstance(crv, str):
        return 'EC key: "crv" must be a string'
    if alg and crv and _EC_CURVES.get(crv, ("",))[0] != alg:
        return f'EC key: "alg" {alg!r} does not fit "crv" {crv!r}'
    curve = _ec_curve(alg, crv)
    if curve is None:
        return f"EC key: curve {crv or alg!r} is not supported (use P-256, P-384 or P-521)"
    for member in ("x", "y"):
        problem = _member_error(key, member)
        if problem is not None:
            return f"EC key: {problem}"
    x = int.from_bytes(_decode(key["x"]), "big")
    y = int.from_bytes(_decode(key["y"]), "big")
    try:
        ec.EllipticCurvePublicNumbers(x, y, curve).public_key()
    except ValueError:
        return "EC key: (x, y) is not a point on the curve"
    return None


def _ec_curve(alg: str, crv: str) -> ec.EllipticCurve | None:
    if not alg and not crv:
        crv = "P-256"  # Envoy's default
    for name, (algorithm, curve) in _EC_CURVES.items():
        if alg == algorithm or crv == name:
            return curve
    return None


def _oct_error(key: Mapping[str, Any], alg: str) -> str | None:
    if alg and alg not in _HMAC_ALGORITHMS:
        return f'oct key with "alg" {alg!r} (must be HS256, HS384 or HS512)'
    problem = _member_error(key, "k")
    if problem is not None:
        return f"oct key: {problem}"
    if not _decode(key["k"]):
        return 'oct key: "k" is empty'
    return None


def _okp_error(key: Mapping[str, Any], alg: str) -> str | None:
    if alg and alg != "EdDSA":
        return f'OKP key with "alg" {alg!r} (must be EdDSA)'
    crv = key.get("crv")
    if crv != "Ed25519":
        return f'OKP key: "crv" must be Ed25519 (got {crv!r})'
    problem = _member_error(key, "x")
    if problem is not None:
        return f"OKP key: {problem}"
    if len(_decode(key["x"])) != _ED25519_KEY_LENGTH:
        return f'OKP key: "x" must be {_ED25519_KEY_LENGTH} bytes'
    return None


def _member_error(key: Mapping[str, Any], member: str) -> str | None:
    value = key.get(member)
    if value is None:
        return f'"{member}" is missing'
    if not isinstance(value, str):
        return f'"{member}" must be a string'
    if _BASE64URL.fullmatch(value) is None or _try_decode(value) is None:
        return f'"{member}" is not base64url'
    return None


def _decode(value: str) -> bytes:
    decoded = _try_decode(value)
    assert decoded is not None  # checked by _member_error
    return decoded


def _try_decode(value: str) -> bytes | None:
    stripped = value.rstrip("=")
    if len(stripped) % 4 == 1:
        return None
    try:
        return base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    except (binascii.Error, ValueError):
        return None


_KEY_CHECKS = {"RSA": _rsa_error, "EC": _ec_error, "oct": _oct_error, "OKP": _okp_error}
