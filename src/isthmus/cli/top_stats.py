"""The arithmetic behind `isthmus top`, as Prometheus would do it. Pure.

Each sidecar's merged metrics are read twice; what happened in between is the increase of
every counter (a counter that went down was reset, as Prometheus' `increase` assumes, and
counts from zero). Rates are increases over the time between that sidecar's two reads.
Per destination service (reporter="destination", the server sidecars' view):
requests per second, the share of 5xx responses, and p50/p99 from the increase of the
`istio_request_duration_milliseconds` buckets, summed over sidecars with
`histogram_quantile`'s interpolation. Per edge source workload -> destination service the
same from the client sidecars (reporter="source"). These equal the seed's PromQL:
`sum(rate(istio_requests_total{reporter="destination",response_code=~"5.."}[W])) by
(destination_service) / sum(rate(istio_requests_total{reporter="destination"}[W])) by
(destination_service)` and `histogram_quantile(0.99, sum(rate(
istio_request_duration_milliseconds_bucket{reporter="source"}[W])) by (le,
source_workload, destination_service))`.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

REQUESTS = "istio_requests_total"
DURATION_BUCKETS = "istio_request_duration_milliseconds_bucket"
WANTED = (REQUESTS, DURATION_BUCKETS)
# The sidecars' metrics are read with this filter: Envoy's stat names of the two
# families above (the agent passes the query to Envoy's admin API).
ENVOY_FILTER = r"istio\.request(s_total|_duration_milliseconds)"
UNKNOWN = "unknown"

_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
_UNESCAPE = re.compile(r"\\(.)")

Labels = tuple[tuple[str, str], ...]
SeriesKey = tuple[str, Labels]


def _unescape(value: str) -> str:
    if "\\" not in value:
        return value
    return _UNESCAPE.sub(lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def _number(text: str) -> float:
    if text in ("+Inf", "Inf"):
        return math.inf
    if text == "-Inf":
        return -math.inf
    return float(text)


def parse_samples(text: str, names: Iterable[str] = WANTED) -> dict[SeriesKey, float]:
    """The samples of the families `names` in Prometheus text format: (name, sorted
    labels) -> value. Other lines, comments and unreadable samples are skipped."""
    wanted = tuple(names)
    samples: dict[SeriesKey, float] = {}
    for line in text.splitlines():
        if not line.startswith(wanted):
            continue
        brace = line.find("{")
        if brace >= 0:
            name = line[:brace]
            close = line.rfind("}")
            labels = tuple(
                sorted((k, _unescape(v)) for k, v in _LABEL.findall(line[brace + 1 : close]))
            )
            rest = line[close + 1 :].split()
        else:
            name, *rest = line.split()
            labels = ()
        if name not in wanted or not rest:
            continue
        try:
            samples[(name, labels)] = _number(rest[0])
        except ValueError:
            continue
    return samples


@dataclass(frozen=True)
class Scrape:
    """One read of one sidecar: when (monotonic seconds) and its samples."""

    at: float
    samples: Mapping[SeriesKey, float]


def increase(before: Scrape, after: Scrape) -> dict[SeriesKey, float]:
    """How much each counter grew between two reads. A series new in `after` grew from
    zero; one that went down was reset and grew from zero to its value."""
    grown = {}
    for key, value in after.samples.items():
        old = before.samples.get(key, 0.0)
        grown[key] = value - old if value >= old else value
    return grown


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float:
    """Prometheus' histogram_quantile over (upper bound, cumulative count) pairs: NaN
    without observations or without a +Inf bucket; linear interpolation inside the
    bucket the rank falls in (from 0 for the first one); the highest finite bound when it
    falls in the +Inf bucket."""
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    merged: dict[float, float] = defaultdict(float)
    for bound, count in buckets:
        merged[bound] += count
    ordered = sorted(merged.items())
    if not ordered or not math.isinf(ordered[-1][0]):
        return math.nan
    counts = []
    highest = 0.0
    for _bound, count in ordered:  # Prometheus' ensureMonotonic
        highest = max(highest, count)
        counts.append(highest)
    if len(ordered) < 2:
        return math.nan
    observations = counts[-1]
    if observations == 0:
        return math.nan
    rank = q * observations
    index = next(i for i, count in enumerate([*counts[:-1], math.inf]) if count >= rank)
    if index == len(ordered) - 1:
        return ordered[-2][0]
    if index == 0 and ordered[0][0] <= 0:
        return ordered[0][0]
    start, end, count = 0.0, ordered[index][0], counts[index]
    if index > 0:
        start = ordered[index - 1][0]
        count -= counts[index - 1]
        rank -= counts[index - 1]
    return start + (end - start) * (rank / count)


@dataclass(frozen=True)
class Traffic:
    """What `top` shows for one service or edge over the window."""

    rps: float
    error_ratio: float | None  # share of 5xx responses; None without requests
    p50: float | None  # milliseconds; None without observations
    p99: float | None


@dataclass
class _Sums:
    requests: float = 0.0
    errors: float = 0.0
    buckets: dict[float, float] = field(default_factory=lambda: defaultdict(float))

    def traffic(self) -> Traffic:
        p50, p99 = (histogram_quantile(q, self.buckets.items()) for q in (0.5, 0.99))
        return Traffic(
            rps=self.requests,
            error_ratio=self.errors / self.requests if self.requests > 0 else None,
            p50=None if math.isnan(p50) else p50,
            p99=None if math.isnan(p99) else p99,
        )


def _key_of(labels: Mapping[str, str], names: Sequence[str]) -> tuple[str, ...]:
    return tuple(labels.get(name) or UNKNOWN for name in names)


def _aggregate(
    pairs: Iterable[tuple[Scrape, Scrape]], reporter: str, by: Sequence[str]
) -> dict[tuple[str, ...], Traffic]:
    sums: dict[tuple[str, ...], _Sums] = defaultdict(_Sums)
    for before, after in pairs:
        elapsed = after.at - before.at
        if elapsed <= 0:
            continue
        for (name, pairs_of_labels), grown in increase(before, after).items():
            labels = dict(pairs_of_labels)
            if labels.get("reporter") != reporter:
                continue
            rate = grown / elapsed
            target = sums[_key_of(labels, by)]
            if name == REQUESTS:
                target.requests += rate
                if labels.get("response_code", "").startswith("5"):
                    target.errors += rate
            elif name == DURATION_BUCKETS and "le" in labels:
                try:
                    target.buckets[_number(labels["le"])] += rate
                except ValueError:
                    continue
    return {key: total.traffic() for key, total in sorted(sums.items())}


SERVICE_KEY = ("destination_service",)
EDGE_KEY = ("source_workload", "source_workload_namespace", "destination_service")


def services(pairs: Iterable[tuple[Scrape, Scrape]]) -> dict[tuple[str, ...], Traffic]:
    """Per destination service, as its server sidecars saw it (reporter="destination")."""
    return _aggregate(pairs, "destination", SERVICE_KEY)


def edges(pairs: Iterable[tuple[Scrape, Scrape]]) -> dict[tuple[str, ...], Traffic]:
    """Per (source workload, its namespace, destination service), as the client sidecars
    saw it (reporter="source")."""
    return _aggregate(pairs, "source", EDGE_KEY)


def by_labels(
    pairs: Iterable[tuple[Scrape, Scrape]], reporter: str, labels: Sequence[str]
) -> dict[tuple[str, ...], Traffic]:
    """The same numbers per any of Istio's labels at one reporter, e.g. per edge and
    `destination_version`, as a canary analysis watches them (`isthmus demo`)."""
    return _aggregate(pairs, reporter, labels)
