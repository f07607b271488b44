"""Ports of an ingress gateway published on the host's loopback: `HOSTPORT:PORT` pairs.

`isthmus up --ingress-port 8080:80` makes the gateway's port 80 reachable on the host at
127.0.0.1:8080 (and nowhere else: the address is always 127.0.0.1). The pairs travel as
the gateway pod's annotation `isthmus.io/published-ports: "8080:80,8443:443"`, then as the
agent's `--publish HOSTPORT:PORT` flags, then as the node metadata PUBLISHED_PORTS. One
parser for every stop on the way, so that each refuses the same things with the same words.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

PUBLISHED_PORTS_ANNOTATION = "isthmus.io/published-ports"
PUBLISHED_ADDRESS = "127.0.0.1"  # the only address a published port listens on


class PublishedPortError(ValueError):
    """A `HOSTPORT:PORT` pair (or a list of them) is unusable; the message says why."""


@dataclass(frozen=True, order=True)
class PublishedPort:
    """127.0.0.1:host_port on the host reaches the gateway's `port`."""

    host_port: int
    port: int

    def __str__(self) -> str:
        return f"{self.host_port}:{self.port}"


def _number(text: str, what: str, pair: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise PublishedPortError(f"{pair!r}: {what} {text!r} is not a port number")
    number = int(text)
    if not 1 <= number <= 65535:
        raise PublishedPortError(f"{pair!r}: {what} {number} is out of range 1-65535")
    return number


def parse_published_port(pair: str) -> PublishedPort:
    """One `HOSTPORT:PORT`, e.g. `8080:80`."""
    text = pair.strip()
    host, colon, port = text.partition(":")
    if not colon or ":" in port:
        raise PublishedPortError(f"{pair!r} is not HOSTPORT:PORT (e.g. 8080:80)")
    return PublishedPort(_number(host, "host port", text), _number(port, "port", text))


def check_published_ports(ports: Iterable[PublishedPort]) -> tuple[PublishedPort, ...]:
    """Sorted by host port; a host port can be published once only."""
    result = tuple(sorted(ports))
    seen: set[int] = set()
    for port in result:
        if port.host_port in seen:
            raise PublishedPortError(f"host port {port.host_port} is published twice")
        seen.add(port.host_port)
    return result


def parse_published_ports(text: str) -> tuple[PublishedPort, ...]:
    """A comma-separated list (the annotation's and the metadata's form); empty: none."""
    return check_published_ports(
        parse_published_port(part) for part in text.split(",") if part.strip()
    )


def format_published_ports(ports: Iterable[PublishedPort]) -> str:
    """`8080:80,8443:443`: what parse_published_ports reads back."""
    return ",".join(str(port) for port in ports)
