"""Kind-specific table columns for `isthmus get`, in the spirit of kubectl's printers.

Each column reads one thing from a stored body; missing fields print as `<none>`
(or the field's Istio default) rather than failing, since bodies are the user's YAML.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

Body = dict[str, Any]
Column = tuple[str, Callable[[Body], str]]

NONE = "<none>"


def _get(body: Body, *path: str) -> Any:
    value: Any = body
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _joined(*path: str) -> Callable[[Body], str]:
    def column(body: Body) -> str:
        value = _get(body, *path)
        if isinstance(value, list) and value:
            return ",".join(str(v) for v in value)
        return NONE

    return column


def _scalar(*path: str, default: str = NONE) -> Callable[[Body], str]:
    def column(body: Body) -> str:
        value = _get(body, *path)
        return default if value is None or value == "" else str(value)

    return column


def _names(*path: str) -> Callable[[Body], str]:
    def column(body: Body) -> str:
        items = _get(body, *path)
        names = [str(i.get("name")) for i in items or [] if isinstance(i, dict)]
        return ",".join(names) or NONE

    return column


def _service_ports(body: Body) -> str:
    ports = _get(body, "spec", "ports") or []
    shown = [
        f"{p.get('port', '?')}/{p.get('protocol', 'TCP')}" for p in ports if isinstance(p, dict)
    ]
    return ",".join(shown) or NONE


def _entry_ports(body: Body) -> str:
    ports = _get(body, "spec", "ports") or []
    shown = [
        f"{p.get('number', '?')}/{p.get('protocol', '')}".rstrip("/")
        for p in ports
        if isinstance(p, dict)
    ]
    return ",".join(shown) or NONE


def _labels(labels: Any) -> str:
    if not isinstance(labels, dict) or not labels:
        return NONE
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _images(body: Body) -> str:
    containers = _get(body, "spec", "template", "spec", "containers") or []
    return ",".join(str(c.get("image")) for c in containers if isinstance(c, dict)) or NONE


def _sidecar_outbound(body: Body) -> str:
    """The Sidecar's outboundTrafficPolicy mode; `<none>` when the mesh's applies."""
    policy = _get(body, "spec", "outboundTrafficPolicy")
    if not isinstance(policy, dict):
        return NONE
    return str(policy.get("mode", "REGISTRY_ONLY"))


def _secret_data(body: Body) -> str:
    """kubectl's DATA: how many keys a Secret holds (never a value)."""
    keys: set[object] = set()
    for field in ("data", "stringData"):
        values = body.get(field)
        if isinstance(values, dict):
            keys.update(values)
    return str(len(keys))


COLUMNS: dict[str, tuple[Column, ...]] = {
    "VirtualService": (
        ("GATEWAYS", _joined("spec", "gateways")),
        ("HOSTS", _joined("spec", "hosts")),
    ),
    "DestinationRule": (("HOST", _scalar("spec", "host")),),
    "ServiceEntry": (
        ("HOSTS", _joined("spec", "hosts")),
        ("LOCATION", _scalar("spec", "location", default="MESH_EXTERNAL")),
        ("RESOLUTION", _scalar("spec", "resolution", default="NONE")),
    ),
    "WorkloadEntry": (("ADDRESS", _scalar("spec", "address")),),
    "Gateway": (),
    "Service": (("PORTS", _service_ports),),
    "Deployment": (("REPLICAS", _scalar("spec", "replicas", default="1")),),
    "Secret": (("TYPE", _scalar("type", default="Opaque")), ("DATA", _secret_data)),
    "PeerAuthentication": (("MODE", _scalar("spec", "mtls", "mode", default="UNSET")),),
    "AuthorizationPolicy": (("ACTION", _scalar("spec", "action", default="ALLOW")),),
    "Sidecar": (
        ("WORKLOADS", lambda b: _labels(_get(b, "spec", "workloadSelector", "labels"))),
        ("OUTBOUND", _sidecar_outbound),
    ),
}

WIDE_COLUMNS: dict[str, tuple[Column, ...]] = {
    "DestinationRule": (("SUBSETS", _names("spec", "subsets")),),
    "ServiceEntry": (("PORTS", _entry_ports),),
    "WorkloadEntry": (("LABELS", lambda b: _labels(_get(b, "spec", "labels"))),),
    "Service": (("SELECTOR", lambda b: _labels(_get(b, "spec", "selector"))),),
    "Deployment": (
        ("IMAGES", _images),
        ("SELECTOR", lambda b: _labels(_get(b, "spec", "selector", "matchLabels"))),
    ),
}


def columns_for(kind: str, wide: bool) -> tuple[Column, ...]:
    """The kind's own columns (between NAME and AGE); `wide` adds the -o wide ones."""
    extra = WIDE_COLUMNS.get(kind, ()) if wide else ()
    return COLUMNS.get(kind, ()) + extra


def age(body: Body, now: datetime | None = None) -> str:
    """kubectl-style age of an object from metadata.creationTimestamp: 45s, 5m12s, 3h, 12d."""
    stamp = _get(body, "metadata", "creationTimestamp")
    if not isinstance(stamp, str):
        return NONE
    try:
        created = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return NONE
    seconds = int(((now or datetime.now(UTC)) - created).total_seconds())
    return human_duration(max(seconds, 0))


def human_duration(seconds: int) -> str:
    """A short, coarser-as-it-grows duration, as kubectl prints ages."""
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if days < 8:
        rest = hours % 24
        return f"{days}d{rest}h" if rest else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    years, rest = divmod(days, 365)
    return f"{years}y{rest}d" if rest and years < 8 else f"{years}y"
