"""The pod annotation `proxy.istio.io/config`: per-pod ProxyConfig overrides.

Istio lets a pod override mesh-wide ProxyConfig fields with a YAML (or JSON) document
in this annotation. The agent honours those that shape its own process,
`concurrency` (Envoy worker threads; 0 means one per CPU),
`terminationDrainDuration` (how long to drain before stopping Envoy) and, among the
agent settings in `proxyMetadata`, Istio's `SECRET_TTL` (the workload certificate's
lifetime) and `ECC_SIGNATURE_ALGORITHM` (ECDSA keys); every other field is reported
back as ignored so the agent can say so.
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
    secret_ttl: str | None = None  # a Go duration, checked where --cert-ttl is
    # proxyMetadata ECC_SIGNATURE_ALGORITHM: "ECDSA" gives the workload an ECDSA P-256 key.
    ecdsa: bool = False
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
    metadata = data.get("proxyMetadata") or {}
    if not isinstance(metadata, dict):
        raise _error("proxyMetadata must be a map of agent settings")
    secret_ttl = metadata.get("SECRET_TTL")
    if secret_ttl is not None and not isinstance(secret_ttl, str):
        raise _error(f'proxyMetadata.SECRET_TTL must be a duration like "1m", got {secret_ttl!r}')
    algorithm = metadata.get("ECC_SIGNATURE_ALGORITHM")
    if algorithm not in (None, "ECDSA"):
        raise _error(f'proxyMetadata.ECC_SIGNATURE_ALGORITHM must be "ECDSA", got {algorithm!r}')
    known = ("concurrency", "terminationDrainDuration", "proxyMetadata")
    used = ("SECRET_TTL", "ECC_SIGNATURE_ALGORITHM")
    ignored = [str(key) for key in data if key not in known]
    ignored += [f"proxyMetadata.{key}" for key in metadata if key not in used]
    return ProxyConfigOverrides(
        concurrency=None if concurrency is None else _concurrency(concurrency),
        termination_drain_duration=None if drain is None else _duration(drain),
        secret_ttl=secret_ttl,
        ecdsa=algorithm == "ECDSA",
        ignored=tuple(sorted(ignored)),
    )


def envoy_concurrency(concurrency: int) -> int:
    """Worker threads to start Envoy with: ProxyConfig's 0 means one per CPU."""
    if concurrency > 0:
        return concurrency
    return len(os.sched_getaffinity(0)) or 1
