"""The gRPC echo demo answers what it promises: echoes, the status asked for, a stream."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from isthmus.demo import grpc_echo
from isthmus.testing.ports import free_port


@pytest.fixture(scope="module")
def target() -> Iterator[str]:
    port = free_port()
    server: Any = grpc_echo.server(port, workers=2)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(None)


def test_unary_calls_are_echoed(target: str) -> None:
    assert grpc_echo.call(target, count=3) == {
        "calls": 3,
        "codes": {"OK": 3},
        "sent": 3,
        "received": 3,
    }


def test_a_unary_call_answers_the_status_asked_for(target: str) -> None:
    outcome = grpc_echo.call(target, count=2, status="NOT_FOUND")
    assert outcome == {"calls": 2, "codes": {"NOT_FOUND": 2}, "sent": 2, "received": 0}
    unknown = grpc_echo.call(target, status="NO_SUCH_STATUS")
    assert unknown["codes"] == {"UNKNOWN": 1}


def test_a_chat_call_answers_every_message(target: str) -> None:
    outcome = grpc_echo.call(target, count=2, stream=4)
    assert outcome == {"calls": 2, "codes": {"OK": 2}, "sent": 8, "received": 8}


def test_main_prints_one_json_line(target: str, capsys: pytest.CaptureFixture[str]) -> None:
    grpc_echo.main(["call", target, "--stream", "2"])
    assert capsys.readouterr().out.strip() == (
        '{"calls": 1, "codes": {"OK": 1}, "sent": 2, "received": 2}'
    )
