"""Structured log lines for the xDS server (see isthmus.logfmt)."""

from __future__ import annotations

from isthmus.logfmt import EventLog

COMPONENT = "xds"
_events = EventLog(COMPONENT)
logger = _events.logger
line = _events.line
log = _events.log
