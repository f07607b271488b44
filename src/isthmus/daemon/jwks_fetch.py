"""Fetch JSON Web Key Sets over HTTP(S), as istiod's JwksResolver does.

A key set is fetched from a RequestAuthentication's jwksUri, or through the `jwks_uri` of
an issuer's OpenID discovery document. Each fetch has a deadline (the rule's `timeout`,
else 5 s) and a size bound; a body that is not a key set Envoy accepts is a failure, so a
bad server can never make Envoy refuse a listener. As Istio does, connections to
link-local addresses and known cloud metadata endpoints are refused at connect time (so
redirects and IP literals are covered too): a jwksUri must not become a way to read them.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import json
import logging
import socket
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import aiohttp

from isthmus.api.checks_request_authentication import jwks_uri_error
from isthmus.api.jwks import jwks_error
from isthmus.model.jwks import JwksSource

log = logging.getLogger("isthmus.jwks")

MAX_BODY_BYTES = 1 << 20  # a key set is a few KiB; refuse to hold more than 1 MiB
# Istio's pkg/security/dial.go: link-local (incl. 169.254.169.254) and these.
_BLOCKED_NETWORKS = (
    ipaddress.ip_network("169.254.0.0/16"),
    ipaddress.ip_network("fe80::/10"),
    ipaddress.ip_network("ff02::/16"),  # link-local multicast
    ipaddress.ip_network("224.0.0.0/24"),  # link-local multicast
    ipaddress.ip_network("100.100.100.200/32"),  # Alibaba Cloud metadata
    ipaddress.ip_network("fd00:ec2::/32"),  # AWS IMDS (IPv6)
)

Fetched = dict[JwksSource, str | None]
# (family, type, proto, canonname, sockaddr): what aiohttp's socket_factory is given.
AddrInfo = tuple[Any, Any, int, str, tuple[Any, ...]]


class JwksFetchError(Exception):
    """The key set could not be fetched or is not one Envoy accepts; str() says why."""


def blocked_address_error(address: str) -> str | None:
    """Why a connection to `address` is refused, or None."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    for network in _BLOCKED_NETWORKS:
        if ip.version == network.version and ip in network:
            return f"connection to {address} refused: link-local or cloud metadata address"
    return None


def _guarded_socket(addr_info: AddrInfo) -> socket.socket:
    family, kind, proto, _, address = addr_info
    problem = blocked_address_error(str(address[0]))
    if problem is not None:
        raise OSError(errno.EACCES, problem)
    return socket.socket(family, kind, proto)


def client_session() -> aiohttp.ClientSession:
    """A session whose every connection passes the address guard."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(socket_factory=_guarded_socket, force_close=True)
    )


async def fetch_jwks(session: aiohttp.ClientSession, source: JwksSource, timeout: timedelta) -> str:
    """The key set of `source`; raise JwksFetchError."""
    uri = source.uri
    if source.discovery:
        uri = _discovered_jwks_uri(await _get(session, uri, timeout))
    text = await _get(session, uri, timeout)
    problem = jwks_error(text)
    if problem is not None:
        raise JwksFetchError(f"{uri}: not a usable key set: {problem}")
    return text


async def resolve_jwks(
    session: aiohttp.ClientSession, sources: Mapping[JwksSource, timedelta]
) -> Fetched:
    """Fetch every source concurrently (each within its timeout): its key set, or None when
    the fetch failed (logged with the reason)."""
    results = await asyncio.gather(
        *(fetch_jwks(session, source, timeout) for source, timeout in sources.items()),
        return_exceptions=True,
    )
    out: Fetched = {}
    for source, result in zip(sources, results, strict=True):
        if isinstance(result, str):
            out[source] = result
            continue
        if not isinstance(result, JwksFetchError):
            raise result
        log.warning("jwks fetch_failed uri=%s error=%r", source.uri, str(result))
        out[source] = None
    return out


async def _get(session: aiohttp.ClientSession, uri: str, timeout: timedelta) -> str:
    deadline = aiohttp.ClientTimeout(total=timeout.total_seconds())
    try:
        async with session.get(uri, timeout=deadline) as response:
            status = response.status
            body = await _bounded_body(response, uri)
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
        raise JwksFetchError(f"{uri}: {type(exc).__name__}: {exc}") from None
    if not 200 <= status < 300:
        raise JwksFetchError(f"{uri}: status {status}: {body[:100]!r}")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise JwksFetchError(f"{uri}: answer is not UTF-8") from None


async def _bounded_body(response: aiohttp.ClientResponse, uri: str) -> bytes:
    body = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise JwksFetchError(f"{uri}: answer larger than {MAX_BODY_BYTES} bytes")
    return bytes(body)


def _discovered_jwks_uri(document: str) -> str:
    """The `jwks_uri` of an OpenID discovery document, an http(s) URL."""
    try:
        data = json.loads(document)
    except ValueError:
        raise JwksFetchError("OpenID discovery document is not JSON") from None
    uri = data.get("jwks_uri") if isinstance(data, dict) else None
    if not isinstance(uri, str) or jwks_uri_error(uri) is not None:
        raise JwksFetchError(f"OpenID discovery document has no valid jwks_uri ({uri!r})")
    return uri
