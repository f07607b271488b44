"""A request (or connection) as Envoy's RBAC filters see it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Request:
    """What RBAC sees of one request (HTTP filters) or connection (network filters).

    `source_principal` is the peer certificate's URI SAN (`spiffe://...`), None without
    mTLS. `remote_ip` is the client address from X-Forwarded-For, if any. `jwt_payload` is
    the payload of the JWT the jwt_authn filter verified, as it writes it into dynamic
    metadata (space-delimited claims such as `scope` split into lists); None without a
    token."""

    method: str = "GET"
    path: str = "/"
    host: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    source_principal: str | None = None
    source_ip: str = "127.0.0.1"
    remote_ip: str | None = None
    destination_ip: str = "127.0.0.1"
    destination_port: int = 80
    sni: str = ""
    jwt_payload: Mapping[str, Any] | None = None
