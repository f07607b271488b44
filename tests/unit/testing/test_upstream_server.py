"""UpstreamServer echoes requests and its failure knobs change answers at runtime."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import pytest

from isthmus.testing.upstream import UpstreamServer


def _get(
    connection: http.client.HTTPConnection,
    path: str = "/",
    headers: dict[str, str] | None = None,
    method: str = "GET",
    body: bytes | None = None,
) -> tuple[http.client.HTTPResponse, Any]:
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    raw = response.read()
    return response, json.loads(raw) if raw else None


def _connect(server: UpstreamServer) -> closing[http.client.HTTPConnection]:
    return closing(http.client.HTTPConnection(server.host, server.port, timeout=5))


@pytest.fixture
def connection(upstream: UpstreamServer) -> Iterator[http.client.HTTPConnection]:
    with _connect(upstream) as client:
        yield client


def test_answer_names_the_server_and_echoes_the_request(
    upstream: UpstreamServer, connection: http.client.HTTPConnection
) -> None:
    response, document = _get(connection, "/items?id=3", {"X-Canary": "yes"})

    assert response.status == 200
    assert response.getheader("x-upstream") == "alpha"
    assert document["server"] == "alpha"
    assert document["path"] == "/items?id=3"
    assert document["headers"]["x-canary"] == "yes"
    assert upstream.requests == 1
    assert upstream.requests_by_path["/items?id=3"] == 1
    assert upstream.recent[-1].headers["x-canary"] == "yes"


def test_connection_is_kept_alive_across_requests(
    upstream: UpstreamServer, connection: http.client.HTTPConnection
) -> None:
    _get(connection)
    first_socket = connection.sock
    _get(connection)
    assert first_socket is not None and connection.sock is first_socket
    assert upstream.requests == 2
    assert upstream.connections_opened == 1


def test_request_bodies_are_read_plain_and_chunked(
    upstream: UpstreamServer, connection: http.client.HTTPConnection
) -> None:
    _, plain = _get(connection, "/p", method="POST", body=b"hello")
    connection.request("POST", "/c", body=iter([b"ab", b"cde"]), encode_chunked=True)
    chunked = json.loads(connection.getresponse().read())
    assert plain["body_bytes"] == 5
    assert chunked["body_bytes"] == 5
    assert upstream.recent[-1].body == b"abcde"


def test_fail_every_nth_request(
    upstream: UpstreamServer, connection: http.client.HTTPConnection
) -> None:
    upstream.fail_every = 3
    statuses = [_get(connection)[0].status for _ in range(9)]
    assert statuses == [200, 200, 503] * 3
    assert upstream.responses == {200: 6, 503: 3}


def test_forced_status_wins_and_can_be_lifted(
    upstream: UpstreamServer, connection: http.client.HTTPConnection
) -> None:
    upstream.status = 500
    assert _get(connection)[0].status == 500
    upstream.status = None
    assert _get(connection)[0].status == 200


def test_fail_rate_extremes(
    upstream: UpstreamServer, connection: http.client.HTTPConnection
) -> None:
    upstream.fail_rate = 1.0
    upstream.fail_status = 502
    assert {_get(connection)[0].status for _ in range(5)} == {502}
    upstream.fail_rate = 0.0
    assert {_get(connection)[0].status for _ in range(5)} == {200}


def test_delay_only_every_nth_request(
    upstream: UpstreamServer, connection: http.client.HTTPConnection
) -> None:
    upstream.delay = 0.2
    upstream.delay_every = 2
    durations = []
    for _ in range(2):
        started = time.perf_counter()
        _get(connection)
        durations.append(time.perf_counter() - started)
    assert durations[0] < 0.15
    assert durations[1] >= 0.2


def test_recent_requests_are_bounded() -> None:
    with UpstreamServer("small", history=3) as server:
        with _connect(server) as connection:
            for index in range(5):
                _get(connection, f"/{index}")
        assert [record.path for record in server.recent] == ["/2", "/3", "/4"]
        assert server.requests == 5


def test_sixteen_concurrent_connections(upstream: UpstreamServer) -> None:
    upstream.delay = 0.05
    errors: list[BaseException] = []

    def client() -> None:
        try:
            with _connect(upstream) as connection:
                for _ in range(5):
                    assert _get(connection)[0].status == 200
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=client) for _ in range(16)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert upstream.requests == 80
    # 16 x 5 delayed requests served in parallel, not one after another (4 s).
    assert time.perf_counter() - started < 2.0


def test_stop_cuts_open_connections_and_restart_reuses_the_port() -> None:
    server = UpstreamServer("gamma").start()
    try:
        port = server.port
        with _connect(server) as connection:
            _get(connection)
            server.stop()
            with pytest.raises((ConnectionError, http.client.HTTPException)):
                _get(connection)
        with _connect(server) as connection, pytest.raises(ConnectionRefusedError):
            _get(connection)
        server.start()
        assert server.port == port
        with _connect(server) as connection:
            assert _get(connection)[0].status == 200
    finally:
        server.stop()
