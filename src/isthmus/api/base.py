"""Shared pieces of every model: strict camelCase models, object metadata, durations."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel

_GO_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_duration(value: Any) -> timedelta:
    """Parse a duration as Istio accepts it (Go syntax: "3s", "100ms", "1h30m", "1.5s")."""
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError(f'must be a duration string like "3s" or "100ms", got {value!r}')
    text = value.strip()
    if text in ("0",):
        return timedelta(0)
    pos = 0
    total = 0.0
    if not text:
        raise ValueError('must be a duration string like "3s" or "100ms", got ""')
    for match in _GO_DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text) or pos == 0:
        raise ValueError(f'invalid duration {value!r}: use a number and unit, like "3s" or "100ms"')
    return timedelta(seconds=total)


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class IstioModel(BaseModel):
    """Base of every spec model: camelCase field names, unknown fields rejected."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        strict=False,
    )


class ObjectMeta(IstioModel):
    """The part of Kubernetes ObjectMeta a user may write."""

    model_config = ConfigDict(
        extra="ignore",  # server-set fields (uid, creationTimestamp, ...) are tolerated
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
    )

    name: str
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    resource_version: str | None = None
    generation: int | None = None


class Resource(IstioModel):
    """A top-level object: apiVersion, kind, metadata and (per kind) spec."""

    api_version: str
    kind: str
    metadata: ObjectMeta
