"""free_port hands out a loopback port that can actually be bound."""

from __future__ import annotations

import socket

from isthmus.testing.ports import free_port


def test_free_port_can_be_bound_on_loopback() -> None:
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))
