"""The node runtime hands every sidecar agent isthmusd's Zipkin socket, as it hands it the
xDS socket; without one (an older runtime context) the agent reports no spans."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from test_pod_record import context, make_pod


def _flag(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def test_the_agent_gets_the_zipkin_socket_of_the_context(tmp_path: Path) -> None:
    ctx = dataclasses.replace(context(tmp_path), zipkin_socket=str(tmp_path / "zipkin.sock"))
    argv = make_pod()._agent_argv(ctx)
    assert _flag(argv, "--zipkin-socket") == str(tmp_path / "zipkin.sock")
    assert _flag(argv, "--xds-socket") == str(tmp_path / "xds.sock")


def test_without_a_zipkin_socket_the_flag_is_left_out(tmp_path: Path) -> None:
    assert "--zipkin-socket" not in make_pod()._agent_argv(context(tmp_path))
