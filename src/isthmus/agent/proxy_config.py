"""The pod annotation `proxy.istio.io/config`: per-pod ProxyConfig overrides.

Istio lets a pod override mesh-wide ProxyConfig fields with a YAML (or JSON) document
in this annotation. The agent honours the two that shape its own process,
`concurrency` (Envoy worker threads; 0 means one per CPU) and
`terminationDrainDuration` (how long to drain before stopping Envoy); every other
ProxyConfig field is reported back as ignored so the agent can say so in its log.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

from isthmus.api.durations import DurationSyntaxError, parse_go_duration_ns
from isthmus.api.yamlstream import decode_input, read_documents

ANNOTATION = "proxy.istio.io/config"
_MAX_CONCURRENCY = 1024


@dataclass(frozen=True)
class ProxyConfigOverrides:
    """What the annotation sets; None where it leaves the agent's default."""

    concurrency: int | None = None
    termination_drain_duration: timedelta | None = None
    ignored: tuple[str, ...] = ()


def _error(message: str) -> ValueError:
    return ValueError(f"annotation {ANNOTATION}: {message}")


def _concurrency(value: object) -> int:
    # Protobuf's JSON mapping also accepts an int32 written as a string.
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise _error(f"concurrency must be a whole number, got {value!r}")
    if not 0 <= value <= _MAX_CONCURRENCY:
        raise _error(f"concurrency {value} is out of range 0-{_MAX_CONCURRENCY}")
    return value


def _duration(value: object) -> timedelta:
    if not isinstance(value, str):
        raise _error(f'terminationDrainDuration must be a duration like "5s", got {value!r}')
    try:
        nanoseconds = parse_go_duration_ns(value)
    except DurationSyntaxError as error:
        raise _error(f"terminationDrainDuration: {error}") from None
    if nanoseconds < 0:
        raise _error(f"terminationDrainDuration {value!r} must not be negative")
    return timedelta(microseconds=nanoseconds // 1_000)


def proxy_config_from_annotation(text: str) -> ProxyConfigOverrides:
    """Parse the annotation's value; raise ValueError naming the field on bad input."""
    decoded = decode_input(text)
    if not isinstance(decoded, tuple):
        raise _error(decoded.message)
    documents, problem = read_documents(*decoded)
    if problem is not None:
        where = f"line {problem.line}: " if problem.line is not None else ""
        raise _error(where + problem.message)
    if not documents:
        return ProxyConfigOverrides()
    if len(documents) > 1:
        raise _error("must hold one YAML document, found several")
    data = documents[0].data
    if not isinstance(data, dict):
        raise _error(f"must be a map of ProxyConfig fields, got {type(data).__name__}")
    concurrency = data.get("concurrency")
    drain = data.get("terminationDrainDuration")
    return ProxyConfigOverrides(
        concurrency=None if concurrency is None else _concurrency(concurrency),
        termination_drain_duration=None if drain is None else _duration(drain),
        ignored=tuple(
            sorted(
                str(key) for key in data if key not in ("concurrency", "terminationDrainDuration")
            )
        ),
    )


def envoy_concurrency(concurrency: int) -> int:
    """Worker threads to start Envoy with: ProxyConfig's 0 means one per CPU."""
    if concurrency > 0:
        return concurrency
    return len(os.sched_getaffinity(0)) or 1
