"""Regex checks: a pattern must be valid RE2 (what Envoy runs) and compile in Python.

Envoy evaluates `regex` matches with RE2, which has no backtracking constructs.
Python's `re` accepts several of those, so compiling with `re` alone would let
lookarounds or backreferences through and Envoy would NACK the route. We therefore
scan for the constructs RE2 refuses (for a clear message), compile with `re` as well
(isthmus also evaluates regexes in Python, e.g. when simulating traffic), and finally
compile with the real RE2 (google-re2) to check the program size Envoy enforces: our
sidecars raise Envoy's `re2.max_program_size.error_level` to MAX_PROGRAM_SIZE, as
Istio's bootstrap does, and a larger program would be NACKed.
"""

from __future__ import annotations

import re
import warnings

import re2 as google_re2

from isthmus.api.limits import MAX_PROGRAM_SIZE, MAX_REGEX_LENGTH

_MAX_REPEAT = 1000  # RE2 refuses counted repetition above this
_COUNTED_REPEAT = re.compile(r"\{([0-9]*)(?:,([0-9]*))?\}")
_ALLOWED_FLAGS = frozenset("ims-")  # RE2 also has U, which Python lacks

_GROUP_PROBLEMS = (
    ("(?=", "lookahead (?=...) is not supported by RE2"),
    ("(?!", "negative lookahead (?!...) is not supported by RE2"),
    ("(?<=", "lookbehind (?<=...) is not supported by RE2"),
    ("(?<!", "negative lookbehind (?<!...) is not supported by RE2"),
    ("(?>", "atomic groups (?>...) are not supported by RE2"),
    ("(?P=", "backreferences (?P=name) are not supported by RE2"),
    ("(?(", "conditional groups (?(...)...) are not supported by RE2"),
    ("(?#", "comments (?#...) are not supported by RE2"),
)
_POSSESSIVE = "possessive quantifiers (like *+) are not supported by RE2"
_ESCAPE_PROBLEMS = {
    "Z": r"\Z is not supported by RE2; use $ (without the m flag)",
    "G": r"\G is not supported by RE2",
    "u": r"\u escapes are not supported by RE2; use \x{...}",
    "U": r"\U escapes are not supported by RE2; use \x{...}",
    "N": r"\N{...} escapes are not supported by RE2",
}


def regex_error(pattern: str) -> str | None:
    """None if Envoy's RE2 and Python's re both accept `pattern`, else why not."""
    if len(pattern) > MAX_REGEX_LENGTH:
        return f"regex is too long ({len(pattern)} characters, at most {MAX_REGEX_LENGTH})"
    problem = _re2_unsupported(pattern)
    if problem:
        return f"invalid regex: {problem}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. FutureWarning for RE2's [[:alpha:]]
            re.compile(pattern)
    except re.error as error:
        return f"invalid regex: {error}"
    except (RecursionError, OverflowError, ValueError):
        return "invalid regex: too complex"
    return _re2_program_problem(pattern)


def _re2_program_problem(pattern: str) -> str | None:
    options = google_re2.Options()
    options.log_errors = False
    try:
        size = int(google_re2.compile(pattern, options).programsize)
    except google_re2.error as error:
        detail = (
            error.args[0].decode() if error.args and isinstance(error.args[0], bytes) else error
        )
        return f"invalid regex: {detail}"
    if size > MAX_PROGRAM_SIZE:
        return (
            f"regex is too complex for Envoy: RE2 program size {size}, at most {MAX_PROGRAM_SIZE}"
        )
    return None


def _re2_unsupported(pattern: str) -> str | None:
    """Scan once, outside and inside character classes, for what RE2 refuses."""
    position = 0
    in_class = False
    while position < len(pattern):
        char = pattern[position]
        if char == "\\":
            problem = _escape_problem(pattern[position + 1 : position + 2])
            if problem:
                return problem
            position += 2
            continue
        if in_class:
            if char == "]":
                in_class = False
            position += 1
            continue
        if char == "[":
            in_class = True
            position += 1
            if pattern[position : position + 1] == "^":
                position += 1
            if pattern[position : position + 1] == "]":
                position += 1  # a literal "]" first in the class
            continue
        if char == "(":
            problem = _group_problem(pattern, position)
            if problem:
                return problem
        elif char in "*+?" and pattern[position + 1 : position + 2] == "+":
            return _POSSESSIVE
        elif char == "{":
            problem = _repeat_problem(pattern, position)
            if problem:
                return problem
        position += 1
    return None


def _escape_problem(escaped: str) -> str | None:
    if escaped in "123456789" and escaped:
        return rf"backreferences (\{escaped}) are not supported by RE2"
    return _ESCAPE_PROBLEMS.get(escaped)


def _group_problem(pattern: str, position: int) -> str | None:
    for opening, problem in _GROUP_PROBLEMS:
        if pattern.startswith(opening, position):
            return problem
    if not pattern.startswith("(?", position) or pattern.startswith("(?P<", position):
        return None
    if pattern.startswith("(?<", position):
        return "write named groups as (?P<name>...)"
    flags = []
    for char in pattern[position + 2 :]:
        if char in ":)":
            break
        flags.append(char)
    unknown = sorted(set(flags) - _ALLOWED_FLAGS)
    if unknown:
        return f"flag {unknown[0]!r} is not supported (only i, m and s)"
    return None


def _repeat_problem(pattern: str, position: int) -> str | None:
    repeat = _COUNTED_REPEAT.match(pattern, position)
    if repeat is None:
        return None
    for bound in repeat.groups():
        if bound and int(bound) > _MAX_REPEAT:
            return f"repetition count {bound} is above RE2's maximum of {_MAX_REPEAT}"
    if pattern[repeat.end() : repeat.end() + 1] == "+":
        return _POSSESSIVE
    return None
