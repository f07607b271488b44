"""How Envoy is run: its command line and the restart backoff."""

from __future__ import annotations

from pathlib import Path

import pytest

from isthmus.agent.envoy_process import Backoff, EnvoySettings


def test_backoff_doubles_from_half_a_second_to_ten() -> None:
    backoff = Backoff()
    assert [backoff.next() for _ in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    backoff.reset()
    assert backoff.next() == 0.5


def test_backoff_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="0 < initial <= maximum"):
        Backoff(initial=5, maximum=1)


def test_command_line() -> None:
    settings = EnvoySettings(
        binary="/opt/envoy",
        bootstrap_path=Path("/w/envoy-bootstrap.json"),
        log_path=Path("/w/envoy.log"),
        concurrency=2,
        drain_duration=4.5,
    )
    command = settings.command()
    assert command[:3] == ["/opt/envoy", "-c", "/w/envoy-bootstrap.json"]

    def flag(name: str) -> str:
        return command[command.index(name) + 1]

    assert flag("--concurrency") == "2"
    assert flag("--drain-time-s") == "5"  # whole seconds, rounded up
    assert int(flag("--parent-shutdown-time-s")) > 5
    assert flag("--drain-strategy") == "immediate"
    assert flag("--log-path") == "/w/envoy.log"
    assert "--use-dynamic-base-id" in command
    assert "--disable-hot-restart" in command


def test_sub_second_drain_still_drains_for_a_second() -> None:
    settings = EnvoySettings("/opt/envoy", Path("b"), Path("l"), 1, drain_duration=0.0)
    command = settings.command()
    assert command[command.index("--drain-time-s") + 1] == "1"
