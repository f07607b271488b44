"""User-facing problems: field paths, per-field problems and the one exception the api raises.

Every problem a user sees is one line: `app.yaml:2 VirtualService production/reviews:
spec.http[1].route[0].weight: must be between 0 and 100`. Checks collect FieldProblems
against a FieldPath; the loader prefixes source, line and object and raises ApiError.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_LINE = 2_000  # the longest error line shown (longer lines end in "...")


@dataclass(frozen=True)
class FieldPath:
    """A YAML field path as users read it: `spec.http[1].route[0]`, map keys as `[key]`."""

    text: str = ""

    def field(self, name: str) -> FieldPath:
        return FieldPath(f"{self.text}.{name}" if self.text else name)

    def index(self, position: int) -> FieldPath:
        return FieldPath(f"{self.text}[{position}]")

    def key(self, key: str) -> FieldPath:
        return FieldPath(f"{self.text}[{key}]")

    def __str__(self) -> str:
        return self.text


ROOT = FieldPath()


@dataclass(frozen=True)
class FieldProblem:
    """One problem at one field; `path` may be empty for the object as a whole."""

    path: str
    message: str

    def render(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class Problems:
    """Collects FieldProblems in the order checks find them."""

    def __init__(self) -> None:
        self.items: list[FieldProblem] = []

    def add(self, path: FieldPath | str, message: str) -> None:
        self.items.append(FieldProblem(str(path), message))

    def __bool__(self) -> bool:
        return bool(self.items)


def one_line(text: str) -> str:
    """Squeeze any message into one bounded line (no newlines, no control characters)."""
    cleaned = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    if len(cleaned) > MAX_LINE:
        cleaned = cleaned[: MAX_LINE - 3] + "..."
    return cleaned


def short_repr(value: object, limit: int = 60) -> str:
    """A value as it may appear inside a message: quoted strings, truncated, one line."""
    if isinstance(value, str):
        text = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    elif isinstance(value, dict):
        text = "a mapping"
    elif isinstance(value, list):
        text = "a list"
    elif value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = repr(value)
    text = one_line(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ApiError(Exception):
    """Raised with every problem found in the input, each one line for the user."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = [one_line(e) for e in errors]
        super().__init__("\n".join(self.errors))
