"""User-facing failures of the CLI: one line each on stderr, exit code 1, no traceback."""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix; every line is printed as `error: <line>`."""

    def __init__(self, *lines: str) -> None:
        super().__init__("\n".join(lines))
        self.lines = [f"error: {line}" for line in lines]
