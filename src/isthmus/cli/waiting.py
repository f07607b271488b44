"""What commands that wait on isthmusd share: `--timeout`, `--idempotency-key`, and how
to tell the user to check a change whose outcome is unknown.

Add `--timeout` to a command by decorating it with `timeout_option` (above `pass_cli`);
every `cli.client()` the command makes then waits at most that long per request:

    @click.command("status")
    @timeout_option
    @pass_cli
    def status_command(cli: CliContext) -> None:
        with cli.client() as client: ...

`timeout_option(default=180.0)` gives a command a longer default. The option sets
`CliContext.timeout` for the command (and its subcommands); the command's function does
not receive it as an argument.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any, TypeVar, overload

import click

from isthmus.cli.context import CliContext
from isthmus.cli.kinds import UnknownKind, resolve_kind
from isthmus.daemon.client import (
    DEFAULT_TIMEOUT,
    MAX_IDEMPOTENCY_KEY_LENGTH,
    NoAnswer,
    format_seconds,
    valid_idempotency_key,
)

__all__ = [
    "check_hint",
    "get_args",
    "idempotency_key_option",
    "parse_duration",
    "timeout_option",
]

F = TypeVar("F", bound=Callable[..., Any])

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)?")
MAX_TIMEOUT = 24 * 3600.0
DEFAULT_NAMESPACE = "default"


def parse_duration(text: str) -> float:
    """Seconds in `500ms`, `30s`, `2m`, `1h`, `1.5s` or plain `45` (seconds); must be > 0."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f'"{text}" is not a duration (e.g. 500ms, 30s, 2m, or seconds)')
    seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds <= 0:
        raise ValueError(f'"{text}": the duration must be more than zero')
    if seconds > MAX_TIMEOUT:
        raise ValueError(f'"{text}": the duration must be at most 24h')
    return seconds


def _set_timeout(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is None:
        return
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from exc
    cli = ctx.find_object(CliContext)
    if cli is not None:
        ctx.obj = dataclasses.replace(cli, timeout=seconds)


@overload
def timeout_option(command: F) -> F: ...
@overload
def timeout_option(*, default: float = DEFAULT_TIMEOUT) -> Callable[[F], F]: ...
def timeout_option(
    command: F | None = None, *, default: float = DEFAULT_TIMEOUT
) -> F | Callable[[F], F]:
    """`--timeout DURATION` (default 60s): how long each request waits for isthmusd.

    Use as `@timeout_option` or `@timeout_option(default=180.0)`, above `@pass_cli`."""
    decorator = click.option(
        "--timeout",
        default=format_seconds(default),
        show_default=True,
        metavar="DURATION",
        expose_value=False,
        callback=_set_timeout,
        help="How long to wait for isthmusd to answer (500ms, 30s, 2m). When it does not "
        "answer in time the command exits 3: the outcome is unknown.",
    )
    if command is not None:
        return decorator(command)
    return decorator


def _check_key(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not valid_idempotency_key(value):
        raise click.BadParameter(
            f"give 1-{MAX_IDEMPOTENCY_KEY_LENGTH} visible ASCII characters, no spaces"
        )
    return value


def idempotency_key_option(command: F) -> F:
    """`--idempotency-key KEY`: isthmusd runs a change with this key at most once."""
    return click.option(
        "--idempotency-key",
        metavar="KEY",
        callback=_check_key,
        help="Run this change at most once: re-running with the same KEY (e.g. after a "
        "timeout) reports the first run's result instead of changing anything again.",
    )(command)


def check_hint(
    cli: CliContext,
    error: NoAnswer,
    target: tuple[str, str, str | None] | None,
    verb: str,
) -> None:
    """Replace the hint of a change whose outcome is unknown by how to check it: `isthmus
    get` of its first object, and the key that makes a re-run happen at most once."""
    if target is None:
        check = cli.command("get", "KIND", "NAME")
    else:
        kind, name, namespace = target
        check = cli.command(*get_args(kind, name, namespace))
    hint = f"check with `{check}`"
    if error.idempotency_key is not None:
        hint += f", or re-run with --idempotency-key {error.idempotency_key} to {verb} at most once"
    error.set_hints(hint)


def get_args(kind: str, name: str, namespace: str | None) -> list[str]:
    """`get vs NAME -n NS` for an object (no -n for cluster-scoped kinds)."""
    try:
        info = resolve_kind(kind)
    except UnknownKind:
        return ["get", kind.lower(), name, *(["-n", namespace] if namespace else [])]
    spelling = info.short_names[0] if info.short_names else info.plural
    if not info.namespaced:
        return ["get", spelling, name]
    return ["get", spelling, name, "-n", namespace or DEFAULT_NAMESPACE]
