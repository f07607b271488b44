"""`isthmus daemon --zipkin-port`: loopback only, and a port it can not have is one clear
error and exit 1, with nothing left listening."""

from __future__ import annotations

import socket
from pathlib import Path

from click.testing import CliRunner

from isthmus.cli.main import cli


def test_a_taken_zipkin_port_is_one_error_and_nothing_is_served(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            cli, ["--home", str(tmp_path / "home"), "daemon", "--zipkin-port", str(port)]
        )
    assert result.exit_code == 1, result.output
    assert f"error: --zipkin-port: zipkin port 127.0.0.1:{port}: " in result.stderr
    assert "Traceback" not in result.output
    for name in ("zipkin.sock", "isthmusd.sock", "xds.sock"):
        assert not (tmp_path / "home" / name).exists(), name


def test_the_zipkin_port_must_be_a_port() -> None:
    result = CliRunner().invoke(cli, ["daemon", "--zipkin-port", "70000"])
    assert result.exit_code == 1
    assert "--zipkin-port" in result.stderr
