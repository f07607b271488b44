"""Loopback port allocation for tests that start real servers and Envoys.

The kernel picks an unused port; the socket is closed again so the caller can bind it.
A small race remains (another process may take the port in between), which is why
Envoy's own admin port is chosen by Envoy itself (see `envoy.EnvoyProcess`).
"""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port
