"""Structured log events shared by every component: ``component event key=value ...``.

Values are quoted (JSON) only when they contain spaces, quotes, `=` or are empty, so a
line always splits unambiguously. The level is added by the formatter of the process
(the daemon's or the agent's), giving ``level component event key=value``.
"""

from __future__ import annotations

import json
import logging


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
