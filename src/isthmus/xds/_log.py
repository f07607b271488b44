"""Structured log lines for the xDS server: ``component event key=value``.

The daemon's formatter prefixes the level, giving ``level component event key=value``;
values that contain spaces or quotes are quoted so a line always splits unambiguously.
"""

from __future__ import annotations

import json
import logging

COMPONENT = "xds"
logger = logging.getLogger("isthmus.xds")


def _value(value: object) -> str:
    text = str(value)
    if text == "" or any(ch in text for ch in ' "=\n\t'):
        return json.dumps(text)
    return text


def line(event: str, **fields: object) -> str:
    """Render one event as ``xds <event> k=v ...`` (fields in the order given)."""
    parts = [COMPONENT, event, *(f"{key}={_value(val)}" for key, val in fields.items())]
    return " ".join(parts)


def log(level: int, event: str, **fields: object) -> None:
    """Emit one structured event on the ``isthmus.xds`` logger if the level is enabled."""
    if logger.isEnabledFor(level):
        logger.log(level, "%s", line(event, **fields))
