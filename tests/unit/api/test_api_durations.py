"""Go duration syntax as Istio's YAML takes it, parsed exactly."""

from __future__ import annotations

from datetime import timedelta

import pytest

from isthmus.api.durations import (
    DurationSyntaxError,
    format_duration,
    parse_duration,
    parse_go_duration_ns,
)


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [
        ("0", 0),
        ("0s", 0),
        ("3s", 3_000_000_000),
        ("100ms", 100_000_000),
        ("1.5s", 1_500_000_000),
        (".5s", 500_000_000),
        ("5.s", 5_000_000_000),
        ("1h30m", 5_400_000_000_000),
        ("1h0m0.001s", 3_600_001_000_000),
        ("250us", 250_000),
        ("250\u00b5s", 250_000),
        ("250\u03bcs", 250_000),
        ("7ns", 7),
        ("+2m", 120_000_000_000),
        ("-1s", -1_000_000_000),
        ("0.333333333333s", 333_333_333),
    ],
)
def test_go_durations_parse_exactly(text: str, nanoseconds: int) -> None:
    assert parse_go_duration_ns(text) == nanoseconds


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "use a number and a unit"),
        ("3", "missing unit"),
        ("3 s", 'unknown unit " s"'),
        ("3sec", 'unknown unit "sec"'),
        ("1d", 'unknown unit "d"'),
        (".s", "use a number and a unit"),
        ("s", "use a number and a unit"),
        ("1e3s", 'unknown unit "e"'),
        ("\u0663s", "use a number and a unit"),
        ("3000000h", "too large"),
    ],
)
def test_non_go_durations_are_refused(text: str, problem: str) -> None:
    with pytest.raises(DurationSyntaxError, match=problem):
        parse_go_duration_ns(text)


def test_parse_duration_gives_timedelta_and_refuses_what_timedelta_cannot_hold() -> None:
    assert parse_duration("1.5s") == timedelta(seconds=1.5)
    assert parse_duration(timedelta(seconds=2)) == timedelta(seconds=2)
    with pytest.raises(ValueError, match="must not be negative"):
        parse_duration("-1s")
    with pytest.raises(ValueError, match="ms precision"):
        parse_duration("1ns")
    with pytest.raises(
        ValueError, match=r'must be a duration string like "3s" or "100ms" \(got 3\)'
    ):
        parse_duration(3)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(seconds=3), "3s"),
        (timedelta(milliseconds=1500), "1500ms"),
        (timedelta(hours=1), "3600s"),
        (timedelta(microseconds=250), "250us"),
        (timedelta(0), "0s"),
    ],
)
def test_format_duration_round_trips(value: timedelta, text: str) -> None:
    assert format_duration(value) == text
    assert parse_duration(text) == value
