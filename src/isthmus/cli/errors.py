"""User-facing failures of the CLI: one line each on stderr, exit code 1, no traceback."""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix; every line is printed as `error: <line>`."""

    def __init__(self, *lines: str) -> None:
        super().__init__("\n".join(lines))
        self.lines = [f"error: {line}" for line in lines]


class ManifestRefused(UserError):
    """Problems found in the user's manifests, printed as they are, one line each
    (`app.yaml:2 VirtualService prod/reviews: spec...`), as isthmusd's refusals are."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__(*lines)
        self.lines = list(lines)
