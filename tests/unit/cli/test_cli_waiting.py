"""`--timeout DURATION`: parsing, and the option every waiting command shares."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from isthmus.cli.context import CliContext, pass_cli
from isthmus.cli.group import IsthmusGroup
from isthmus.cli.waiting import parse_duration, timeout_option
from isthmus.daemon.client import format_seconds
from isthmus.home import MeshHome


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("2m", 120.0),
        ("500ms", 0.5),
        ("1h", 3600.0),
        ("45", 45.0),
        ("1.5", 1.5),
        ("1.5s", 1.5),
        (".25s", 0.25),
        (" 10s ", 10.0),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "s", "abc", "10x", "1m30s", "-1s", "0", "0ms", "25h", "1e3"])
def test_bad_durations_say_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"), [(60.0, "60s"), (0.5, "500ms"), (1.5, "1.5s"), (180.0, "180s")]
)
def test_durations_in_messages(seconds: float, text: str) -> None:
    assert format_seconds(seconds) == text
    assert parse_duration(text) == seconds


@click.group(cls=IsthmusGroup)
@click.pass_context
def group(ctx: click.Context) -> None:
    ctx.obj = CliContext(MeshHome(Path("/nonexistent/isthmus-home")))


@group.command("wait")
@timeout_option
@pass_cli
def wait_command(cli: CliContext) -> None:
    with cli.client() as client:
        click.echo(f"{cli.timeout} {client.timeout}")


@group.command("slow")
@timeout_option(default=180.0)
@pass_cli
def slow_command(cli: CliContext) -> None:
    click.echo(cli.timeout)


@group.command("plain")
@pass_cli
def plain_command(cli: CliContext) -> None:
    click.echo(cli.timeout)


@pytest.mark.parametrize(
    ("args", "printed"),
    [
        (["wait"], "60.0 60.0"),
        (["wait", "--timeout", "2m"], "120.0 120.0"),
        (["wait", "--timeout", "750ms"], "0.75 0.75"),
        (["slow"], "180.0"),
        (["slow", "--timeout", "5"], "5.0"),
        (["plain"], "60.0"),
    ],
)
def test_timeout_option_sets_the_clients_timeout(args: list[str], printed: str) -> None:
    result = CliRunner().invoke(group, args)
    assert (result.exit_code, result.stdout.strip()) == (0, printed)


def test_bad_timeout_is_one_usage_line() -> None:
    result = CliRunner().invoke(group, ["wait", "--timeout", "soon"])
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: Invalid value for '--timeout': \"soon\" is not a duration")


def test_timeout_is_in_the_help() -> None:
    result = CliRunner().invoke(group, ["slow", "--help"])
    assert "--timeout DURATION" in result.stdout
    assert "[default: 180s]" in result.stdout
