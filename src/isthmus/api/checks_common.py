"""Checks shared by several kinds: durations, ports, percentages, string matches,
destinations, label maps and exportTo, each with Istio's rule and a plain message."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from isthmus.api import names
from isthmus.api.errors import FieldPath, Problems, short_repr
from isthmus.api.networking import Destination, Percent, StringMatch
from isthmus.api.re2 import regex_error

NOT_SUPPORTED = "not supported yet"
_ONE_MS = timedelta(milliseconds=1)


def check_duration(
    problems: Problems, path: FieldPath, value: timedelta | None, *, zero_ok: bool = False
) -> None:
    """Istio's duration rule: at least 1ms, whole milliseconds (0s where it means "off")."""
    if value is None or (zero_ok and value == timedelta(0)):
        return
    if value < _ONE_MS:
        problems.add(path, "duration must be at least 1ms" + (" (or 0s)" if zero_ok else ""))
    elif value.microseconds % 1_000:
        problems.add(path, "only durations to ms precision are supported")


def check_port(problems: Problems, path: FieldPath, port: int | None) -> None:
    if port is not None and not 1 <= port <= 65535:
        problems.add(path, f"port number {port} must be between 1 and 65535")


def check_range(
    problems: Problems, path: FieldPath, value: float | None, low: float, high: float
) -> None:
    if value is not None and not low <= value <= high:
        problems.add(path, f"must be between {_number(low)} and {_number(high)}")


def check_non_negative(problems: Problems, path: FieldPath, value: int | None) -> None:
    if value is not None and value < 0:
        problems.add(path, "must not be negative")


def check_percentage(problems: Problems, path: FieldPath, percent: Percent | None) -> None:
    """A fractional percentage: 0, or 0.0001 up to 100 (Envoy's resolution)."""
    if percent is None:
        return
    value = percent.value
    if not 0.0 <= value <= 100.0 or 0.0 < value < 0.0001:
        problems.add(path.field("value"), "must be 0 or between 0.0001 and 100")


def check_string_match(
    problems: Problems,
    path: FieldPath,
    match: StringMatch | None,
    *,
    presence_ok: bool = False,
    empty_prefix_ok: bool = False,
) -> None:
    """Exactly one of exact, prefix, regex; `{}` only where it means "present"."""
    if match is None:
        return
    chosen = [
        name
        for name, value in (
            ("exact", match.exact),
            ("prefix", match.prefix),
            ("regex", match.regex),
        )
        if value is not None
    ]
    if len(chosen) > 1:
        problems.add(path, f"set only one of exact, prefix and regex (found {', '.join(chosen)})")
        return
    if not chosen:
        if not presence_ok:
            problems.add(path, "set one of exact, prefix and regex")
        return
    if match.prefix == "" and not empty_prefix_ok:
        problems.add(path.field("prefix"), "must not be empty")
    if match.regex is not None:
        check_regex(problems, path.field("regex"), match.regex)


def check_regex(problems: Problems, path: FieldPath, pattern: str) -> None:
    if pattern == "":
        problems.add(path, "must not be empty")
        return
    problem = regex_error(pattern)
    if problem:
        problems.add(path, problem)


def check_destination_host(problems: Problems, path: FieldPath, host: str) -> None:
    if host == "*":
        problems.add(path, 'destination host must not be "*"')
        return
    problem = names.wildcard_domain_error(host)
    if problem:
        problems.add(path, problem)


def check_destination(problems: Problems, path: FieldPath, destination: Destination) -> None:
    check_destination_host(problems, path.field("host"), destination.host)
    if destination.subset is not None:
        problem = names.istio_label_error("subset name", destination.subset)
        if problem:
            problems.add(path.field("subset"), problem)
    if destination.port is not None:
        check_port(problems, path.field("port").field("number"), destination.port.number)


def check_labels(problems: Problems, path: FieldPath, labels: dict[str, str]) -> None:
    for key, message in names.label_errors(labels):
        problems.add(path.key(key), message)


def check_wildcard_free_labels(problems: Problems, path: FieldPath, labels: dict[str, str]) -> None:
    """Workload selectors: no empty keys and no `*` (Istio does not glob labels)."""
    for key, value in labels.items():
        if "*" in key or "*" in value:
            problems.add(path.key(key), "wildcards are not supported in selectors")
    check_labels(problems, path, labels)


def check_export_to(
    problems: Problems,
    path: FieldPath,
    namespace: str,
    export_to: list[str],
    *,
    allow_none: bool = False,
) -> None:
    """`.` (this namespace), `*` (all), a namespace name, or `~` (nobody, ServiceEntry only)."""
    seen: set[str] = set()
    for position, entry in enumerate(export_to):
        here = path.index(position)
        key = namespace if entry == "." else entry
        if key in seen:
            problems.add(here, f"duplicate exportTo entry {short_repr(entry)}")
            continue
        seen.add(key)
        if entry in (".", "*") or (entry == "~" and allow_none):
            continue
        if names.dns1123_label_error(entry):
            problems.add(here, f'{short_repr(entry)} is not a namespace name, "." or "*"')
    if "*" in seen and len(export_to) > 1:
        problems.add(path, '"*" exports to every namespace; it cannot be combined with others')
    if "~" in seen and len(export_to) > 1:
        problems.add(path, '"~" exports to nobody; it cannot be combined with others')


def check_unique(problems: Problems, path: FieldPath, values: Iterable[object], what: str) -> None:
    """Report each value seen before, at its own index."""
    seen: set[object] = set()
    for position, value in enumerate(values):
        if value in seen:
            problems.add(path.index(position), f"duplicate {what} {short_repr(value)}")
        seen.add(value)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def check_workload_selector(problems: Problems, path: FieldPath, labels: dict[str, str]) -> None:
    """Istio's validateWorkloadSelector (the security kinds): no `*` in keys or values
    (reported once per label), then label syntax."""
    plain: dict[str, str] = {}
    for key, value in labels.items():
        if "*" in key or "*" in value:
            problems.add(path.key(key), "wildcards are not supported in selectors")
        else:
            plain[key] = value
    check_labels(problems, path, plain)


def namespaced_host_error(host: str, special_namespaces: frozenset[str]) -> str | None:
    """Istio's `namespace/dnsName` form (Sidecar egress hosts, Gateway server hosts):
    the namespace a name or one of `special_namespaces`, the host a name, `*` or a
    `*.`-prefixed wildcard. `host` without a namespace is checked as a host alone."""
    namespace, slash, name = host.rpartition("/")
    if slash and namespace not in special_namespaces:
        problem = names.dns1123_label_error(namespace)
        if problem:
            return f"namespace of {short_repr(host)}: {problem}"
    if name == "*":
        return None
    problem = names.wildcard_domain_error(name)
    return f"host of {short_repr(host)}: {problem}" if problem else None
