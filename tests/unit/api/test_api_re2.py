"""Regexes: what Envoy's RE2 refuses is refused even where Python's re would accept it.

The verdicts below were checked against the RE2 library itself (google-re2), and a
pattern is accepted only if both RE2 and Python's re compile it.
"""

from __future__ import annotations

import pytest

from isthmus.api.re2 import regex_error

ACCEPTED = [
    r"^/api/v[0-9]+/.*",
    r"\d+\.\d+",
    r"(?i)abc",
    r"(?i:Foo)bar",
    r"(?s).*",
    r"(?m)^a$",
    r"(?P<name>x)",
    r"a{1000}",
    r"x{,5}",
    r"[^]a]",
    r"[]a]",
    r"[\]]",
    r"\bfoo\b",
    r"a|b|",
    r"\x41",
    r"é+",
    r"^(GET|POST)$",
    r"a}+",
    r"\0",
    r"\(",
    r"[[:alpha:]]+",
]

REFUSED = {
    r"a(?=b)": "lookahead (?=...) is not supported by RE2",
    r"a(?!b)": "negative lookahead (?!...) is not supported by RE2",
    r"(?<=a)b": "lookbehind (?<=...) is not supported by RE2",
    r"(?<!a)b": "negative lookbehind (?<!...) is not supported by RE2",
    r"(a)\1": r"backreferences (\1) are not supported by RE2",
    r"[\1]": r"backreferences (\1) are not supported by RE2",
    r"(?P<x>a)(?P=x)": "backreferences (?P=name) are not supported by RE2",
    r"(?>ab)": "atomic groups (?>...) are not supported by RE2",
    r"a*+": "possessive quantifiers (like *+) are not supported by RE2",
    r"a++": "possessive quantifiers (like *+) are not supported by RE2",
    r"a{2}+": "possessive quantifiers (like *+) are not supported by RE2",
    r"a{1001}": "repetition count 1001 is above RE2's maximum of 1000",
    r"a{2,1001}": "repetition count 1001 is above RE2's maximum of 1000",
    r"(?x)a b": "flag 'x' is not supported (only i, m and s)",
    r"(?#c)a": "comments (?#...) are not supported by RE2",
    r"a\Z": r"\Z is not supported by RE2; use $ (without the m flag)",
    r"\u0041": r"\u escapes are not supported by RE2; use \x{...}",
    r"(?(1)a|b)": "conditional groups (?(...)...) are not supported by RE2",
    r"(?<name>x)": "write named groups as (?P<name>...)",
    # Valid RE2 that Python's re cannot compile: refused too (isthmus evaluates in Python).
    r"a\z": r"bad escape \z at position 1",
    r"\pL": r"bad escape \p at position 0",
    # Invalid everywhere.
    r"a**": "multiple repeat at position 2",
    r"[a-": "unterminated character set at position 0",
    "(": "missing ), unterminated subpattern at position 0",
    "\\": "bad escape (end of pattern) at position 0",
}


@pytest.mark.parametrize("pattern", ACCEPTED)
def test_re2_and_python_compatible_patterns_are_accepted(pattern: str) -> None:
    assert regex_error(pattern) is None


@pytest.mark.parametrize("pattern", REFUSED.keys())
def test_patterns_re2_or_python_refuse_are_refused(pattern: str) -> None:
    assert regex_error(pattern) == f"invalid regex: {REFUSED[pattern]}"


def test_regexes_longer_than_istio_allows_are_refused() -> None:
    assert regex_error("a" * 1025) == "regex is too long (1025 characters, at most 1024)"
    assert regex_error("a" * 1024) is None


def test_deeply_nested_groups_do_not_escape_as_exceptions() -> None:
    assert regex_error("(" * 500 + ")" * 500) in (None, "invalid regex: too complex")


def test_programs_larger_than_envoy_accepts_are_refused() -> None:
    """Short, valid RE2 whose compiled program exceeds the sidecars' RE2 size limit."""
    problem = regex_error("[^a]{1000}[^b]{1000}[^c]{1000}[^d]{1000}[^e]{1000}")
    assert problem == "regex is too complex for Envoy: RE2 program size 40004, at most 32768"
    assert regex_error("(items){300}") is None  # 2104: fine under the raised limit
