"""The agent's log events, collected for assertions."""

from __future__ import annotations

import logging


class Events(logging.Handler):
    """The agent's log lines, as `event key=value` text."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def named(self, event: str) -> list[str]:
        return [line for line in self.lines if line.split()[1:2] == [event]]
