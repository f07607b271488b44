"""Structured log events shared by every component: ``component event key=value ...``.

Values are quoted (JSON) only when they contain spaces, quotes, `=` or are empty, so a
line always splits unambiguously. The level is added by the formatter of the process
(`setup_logging` for isthmusd and the node runtime, the agent's own), giving
``level component event key=value``.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path


def _value(value: object) -> str:
    text = str(value)
    if text == "" or any(ch in text for ch in ' "=\n\t'):
        return json.dumps(text)
    return text


class EventLog:
    """Events of one component on the ``isthmus.<component>`` logger."""

    def __init__(self, component: str) -> None:
        self.component = component
        self.logger = logging.getLogger(f"isthmus.{component}")

    def line(self, event: str, **fields: object) -> str:
        """``<component> <event> k=v ...`` with the fields in the order given."""
        parts = [self.component, event, *(f"{k}={_value(v)}" for k, v in fields.items())]
        return " ".join(parts)

    def log(self, level: int, event: str, **fields: object) -> None:
        if self.logger.isEnabledFor(level):
            self.logger.log(level, "%s", self.line(event, **fields))


class _Format(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = self.formatTime(record, "%Y-%m-%dT%H:%M:%S")
        message = record.getMessage()
        component = record.name.removeprefix("isthmus.")
        # Components that already name themselves ("xds push ...") are not named twice.
        short = component.rsplit(".", 1)[-1]
        if message.startswith(short + " "):
            message = message[len(short) + 1 :]
        return f"{ts} {record.levelname.lower()} {component} {message}"


def setup_logging(level: str = "info", file: Path | None = None) -> None:
    """`ts level component event key=value` lines on stderr (and in `file`)."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(file))
    root = logging.getLogger("isthmus")
    for previous in root.handlers:
        previous.close()  # a second setup (tests) must not leak the first one's log file
    root.handlers.clear()
    for h in handlers:
        h.setFormatter(_Format())
        root.addHandler(h)
    root.setLevel(level.upper())
    root.propagate = False
