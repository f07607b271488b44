"""Structured log lines for the agent: ``level agent event key=value`` on stderr.

One line per event, values quoted only when they contain spaces, quotes or `=`, so a
runtime collecting the pod's logs can split every line without guessing.
"""

from __future__ import annotations

import logging
import sys

from isthmus.logfmt import EventLog

COMPONENT = "agent"
_events = EventLog(COMPONENT)
logger = _events.logger
line = _events.line
log = _events.log


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
