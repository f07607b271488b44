"""Structured logs: `level component event key=value ...` on stderr (and a file)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path


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
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(file))
    root = logging.getLogger("isthmus")
    root.handlers.clear()
    for h in handlers:
        h.setFormatter(_Format())
        root.addHandler(h)
    root.setLevel(level.upper())
    root.propagate = False
