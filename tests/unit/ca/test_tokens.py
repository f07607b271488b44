"""Pod tokens name exactly the pod they were issued for and nothing forges or bends them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from isthmus.ca import CaError, PodBinding, TokenIssuer, TokenRejected

BINDING = PodBinding(
    namespace="production", pod="inventory-7d9f", service_account="inventory", uid="u-1"
)
KEY = bytes(range(32))
ISSUER = TokenIssuer(KEY)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(payload: object, key: bytes = KEY) -> str:
    """A token built from the documented format, signed with `key`."""
    signed = "v1." + b64(json.dumps(payload).encode())
    mac = hmac.new(key, signed.encode(), hashlib.sha256).digest()
    return f"{signed}.{b64(mac)}"


def payload_of(token: str) -> dict[str, object]:
    body = token.split(".")[1]
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return decoded


def test_round_trip() -> None:
    token = ISSUER.issue(BINDING)
    assert ISSUER.verify(token) == BINDING
    assert "=" not in token


def test_format_is_the_documented_one() -> None:
    before = int(time.time())
    token = ISSUER.issue(BINDING)
    payload = payload_of(token)
    assert token.startswith("v1.")
    assert payload == {
        "ns": "production",
        "pod": "inventory-7d9f",
        "sa": "inventory",
        "uid": "u-1",
        "iat": payload["iat"],
    }
    assert isinstance(payload["iat"], int) and before <= payload["iat"] <= time.time()
    forged = forge({"ns": "a", "pod": "b", "sa": "c", "uid": "d", "iat": 1})
    assert ISSUER.verify(forged) == PodBinding("a", "b", "c", "d")


def test_tampered_payload_is_refused() -> None:
    _, _, signature = ISSUER.issue(BINDING).split(".")
    other = dict(payload_of(ISSUER.issue(BINDING)), sa="admin")
    token = f"v1.{b64(json.dumps(other).encode())}.{signature}"
    with pytest.raises(TokenRejected, match="signature does not verify"):
        ISSUER.verify(token)


def test_tampered_signature_is_refused() -> None:
    version, payload, signature = ISSUER.issue(BINDING).split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "="))
    raw[0] ^= 0x01
    with pytest.raises(TokenRejected, match="signature does not verify"):
        ISSUER.verify(f"{version}.{payload}.{b64(bytes(raw))}")


def test_another_issuers_token_is_refused() -> None:
    token = TokenIssuer(os.urandom(32)).issue(BINDING)
    with pytest.raises(TokenRejected, match="signature does not verify"):
        ISSUER.verify(token)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"ns": "a", "pod": "b", "sa": "c", "iat": 1}, "missing field 'uid'"),
        ({"ns": "a", "pod": "b", "sa": "", "uid": "d", "iat": 1}, "missing field 'sa'"),
        ({"ns": 1, "pod": "b", "sa": "c", "uid": "d", "iat": 1}, "missing field 'ns'"),
        ({"ns": "a", "pod": "b", "sa": "c", "uid": "d"}, "missing field 'iat'"),
        ({"ns": "a", "pod": "b", "sa": "c", "uid": "d", "iat": True}, "missing field 'iat'"),
        (["ns", "a"], "not a JSON object"),
    ],
)
def test_signed_but_incomplete_payload_is_refused(payload: object, reason: str) -> None:
    with pytest.raises(TokenRejected, match=reason):
        ISSUER.verify(forge(payload))


def test_signed_non_json_is_refused() -> None:
    signed = "v1." + b64(b"\xff not json")
    token = f"{signed}.{b64(hmac.new(KEY, signed.encode(), hashlib.sha256).digest())}"
    with pytest.raises(TokenRejected, match="payload is not JSON"):
        ISSUER.verify(token)


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("", "wrong format"),
        ("v1.abc", "wrong format"),
        ("v2.abc.def", "wrong format"),
        ("v1.a.b.c", "wrong format"),
        ("v1.ab+c.def", "payload is not base64url"),
        ("v1.abc.de=f", "signature is not base64url"),
        ("v1.abcde.def", "payload is not base64url"),
        ("v1..def", "payload is not base64url"),
        ("v1.é.def", "payload is not base64url"),
        ("v1." + "a" * 5000 + ".b", "longer than 4096"),
    ],
)
def test_malformed_tokens_are_refused(token: str, reason: str) -> None:
    with pytest.raises(TokenRejected, match=reason):
        ISSUER.verify(token)


@given(st.text())
def test_random_text_is_only_ever_rejected(text: str) -> None:
    with pytest.raises(TokenRejected):
        ISSUER.verify(text)


@given(st.lists(st.text(alphabet="abcXYZ019-_=+/.é", max_size=12), min_size=1, max_size=4))
def test_token_shaped_text_is_only_ever_rejected(parts: list[str]) -> None:
    with pytest.raises(TokenRejected):
        ISSUER.verify(".".join(["v1", *parts]))


def test_key_is_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "home" / "token.key"
    first = TokenIssuer.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_bytes()) == 32
    second = TokenIssuer.load_or_create(path)
    assert second.verify(first.issue(BINDING)) == BINDING


def test_loose_key_permissions_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "token.key"
    TokenIssuer.load_or_create(path)
    path.chmod(0o644)
    with pytest.raises(CaError, match=r"token\.key: permissions 0644 are looser than 0600"):
        TokenIssuer.load_or_create(path)


def test_wrong_key_length_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "token.key"
    path.write_bytes(b"short")
    path.chmod(0o600)
    with pytest.raises(CaError, match="expected a 32-byte key, found 5 bytes"):
        TokenIssuer.load_or_create(path)
    with pytest.raises(ValueError):
        TokenIssuer(b"short")
