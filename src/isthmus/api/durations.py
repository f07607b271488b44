"""Go duration syntax ("3s", "100ms", "1h30m", "1.5s"), as Istio's YAML accepts it.

Parsed exactly, in integer nanoseconds, so that precision checks ("only durations to ms
precision are supported") see what the user wrote rather than a rounded float.
"""

from __future__ import annotations

import re
from datetime import timedelta

from isthmus.api.errors import short_repr

NANOSECONDS_PER_UNIT = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign
    "\u03bcs": 1_000,  # Greek small letter mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_MAX_NANOSECONDS = 2**63 - 1  # Go's time.Duration is an int64 of nanoseconds
_NUMBER = re.compile(r"([0-9]*)(?:\.([0-9]*))?")
_UNIT = re.compile(r"[^0-9.]*")
_HINT = 'use a number and a unit (ns, us, ms, s, m, h), like "3s" or "100ms"'


class DurationSyntaxError(ValueError):
    """The text is not a Go duration."""


def parse_go_duration_ns(text: str) -> int:
    """Return the duration in nanoseconds; raise DurationSyntaxError if it is not Go syntax."""
    rest = text
    negative = False
    if rest[:1] in ("+", "-"):
        negative = rest[0] == "-"
        rest = rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise DurationSyntaxError(f"invalid duration {_quoted(text)}: {_HINT}")
    total = 0
    while rest:
        number = _NUMBER.match(rest)
        assert number is not None  # the pattern also matches the empty string
        whole, fraction = number.group(1), number.group(2)
        if not whole and not fraction:
            raise DurationSyntaxError(f"invalid duration {_quoted(text)}: {_HINT}")
        rest = rest[number.end() :]
        unit_match = _UNIT.match(rest)
        assert unit_match is not None
        unit = unit_match.group(0)
        if not unit:
            raise DurationSyntaxError(f"invalid duration {_quoted(text)}: missing unit; {_HINT}")
        scale = NANOSECONDS_PER_UNIT.get(unit)
        if scale is None:
            raise DurationSyntaxError(
                f"invalid duration {_quoted(text)}: unknown unit {_quoted(unit)}; {_HINT}"
            )
        rest = rest[unit_match.end() :]
        total += int(whole or "0") * scale
        if fraction:
            total += int(fraction) * scale // 10 ** len(fraction)
        if total > _MAX_NANOSECONDS:
            raise DurationSyntaxError(f"invalid duration {_quoted(text)}: too large")
    return -total if negative else total


def _quoted(text: object) -> str:
    return '"' + str(text).replace('"', '\\"') + '"' if isinstance(text, str) else repr(text)


def parse_duration(value: object) -> timedelta:
    """Parse a YAML duration value into a timedelta (pydantic before-validator).

    Negative durations and ones finer than a microsecond (timedelta's resolution) are
    refused here; range and millisecond-precision rules per field live in validation.
    """
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError(
            f'must be a duration string like "3s" or "100ms" (got {short_repr(value)})'
        )
    nanoseconds = parse_go_duration_ns(value)
    if nanoseconds < 0:
        raise ValueError(f"invalid duration {_quoted(value)}: must not be negative")
    if nanoseconds % 1_000:
        raise ValueError(
            f"invalid duration {_quoted(value)}: only durations to ms precision are supported"
        )
    return timedelta(microseconds=nanoseconds // 1_000)


def format_duration(value: timedelta) -> str:
    """Render a timedelta in the shortest Go syntax that round-trips ("1.5s", "100ms")."""
    microseconds = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    if microseconds % 1_000_000 == 0:
        return f"{microseconds // 1_000_000}s"
    if microseconds % 1_000 == 0:
        return f"{microseconds // 1_000}ms"
    return f"{microseconds}us"
