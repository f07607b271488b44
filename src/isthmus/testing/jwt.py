"""A JWT issuer for tests: an RSA key, its JWKS, and RS256-signed tokens built by hand;
and a loopback server that hands key sets out as a jwksUri would.

Tokens are `base64url(header).base64url(payload).base64url(signature)` (RFC 7519), signed
with `cryptography`, so tests depend on no JWT library and can forge every kind of bad
token (wrong key, tampered payload, expired) as easily as a good one.
"""

from __future__ import annotations

import base64
import http.server
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from isthmus.testing.ports import LOOPBACK

ONE_HOUR_S = 3600


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _integer(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


@dataclass
class RsaIssuer:
    """Signs tokens for `issuer` with a fresh 2048-bit key named `kid`."""

    issuer: str
    kid: str = "test-key"
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )

    def jwk(self) -> dict[str, str]:
        numbers = self.key.public_key().public_numbers()
        return {
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "kid": self.kid,
            "n": _integer(numbers.n),
            "e": _integer(numbers.e),
        }

    def jwks(self) -> str:
        return json.dumps({"keys": [self.jwk()]})

    def claims(self, subject: str, **extra: Any) -> dict[str, Any]:
        """Standard claims of a token valid for an hour, plus `extra` (which may override)."""
        now = int(time.time())
        return {"iss": self.issuer, "sub": subject, "iat": now, "exp": now + ONE_HOUR_S, **extra}

    def sign(self, claims: Mapping[str, Any], *, kid: str | None = None) -> str:
        header = {"alg": "RS256", "typ": "JWT", "kid": kid or self.kid}
        signing_input = f"{_segment(header)}.{_segment(claims)}"
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{b64url(signature)}"


def _segment(document: Mapping[str, Any]) -> str:
    return b64url(json.dumps(document, separators=(",", ":")).encode())


class JwksServer:
    """A loopback HTTP server for key sets: `routes` maps a path to (status, body), and can
    change while it runs. Runs in a thread, so sync and async tests can both use it."""

    def __init__(self, routes: Mapping[str, tuple[int, str]] | None = None) -> None:
        self.routes: dict[str, tuple[int, str]] = dict(routes or {})
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                status, body = server.routes.get(self.path, (404, "not found"))
                data = body.encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        self._httpd = http.server.ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def url(self, path: str) -> str:
        return f"http://{LOOPBACK}:{self.port}{path}"

    def __enter__(self) -> JwksServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()
