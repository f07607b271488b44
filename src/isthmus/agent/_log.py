"""Structured log lines for the agent: ``level agent event key=value`` on stderr.

One line per event, values quoted only when they contain spaces, quotes or `=`, so a
runtime collecting the pod's logs can split every line without guessing.
"""

from __future__ import annotations

import json
import logging
import sys

COMPONENT = "agent"
logger = logging.getLogger("isthmus.agent")


def _value(value: object) -> str:
    text = str(value)
    if text == "" or any(ch in text for ch in ' "=\n\t'):
        return json.dumps(text)
    return text


def line(event: str, **fields: object) -> str:
    """``agent <event> k=v ...`` with the fields in the order given."""
    return " ".join([COMPONENT, event, *(f"{key}={_value(val)}" for key, val in fields.items())])


def log(level: int, event: str, **fields: object) -> None:
    """Emit one event on the ``isthmus.agent`` logger if the level is enabled."""
    if logger.isEnabledFor(level):
        logger.log(level, "%s", line(event, **fields))


class _LevelFirst(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()} {record.getMessage()}"


def setup_logging(level: str = "info") -> None:
    """Send the agent's events to stderr, one `level agent event key=value` line each."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LevelFirst())
    logger.handlers.clear()
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
