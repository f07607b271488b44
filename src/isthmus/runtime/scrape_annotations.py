"""Istio's Prometheus annotations for a pod with a sidecar ("metrics merging"). Pure.

As Istio's sidecar injector does it: a pod with a sidecar is annotated
`prometheus.io/scrape: "true"`, `prometheus.io/port: "15020"`,
`prometheus.io/path: "/stats/prometheus"`, so that one scrape of the agent returns
Envoy's metrics, the agent's and the application's. What the template said about
scraping the application (`prometheus.io/scrape|port|path`) is handed to the agent as
JSON (Istio's ISTIO_PROMETHEUS_ANNOTATIONS), which then scrapes the application inside the
pod and appends its metrics.

Nothing changes when the pod has no sidecar, when the template says
`prometheus.istio.io/merge-metrics: "false"`, when it says `prometheus.io/scrape:
"false"` (the user does not want the pod scraped), or when it already points at the
agent's port.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from isthmus.telemetry.annotations import PATH, PORT, SCRAPE, sanitized

MERGE_METRICS = "prometheus.istio.io/merge-metrics"
AGENT_METRICS_PORT = 15020
AGENT_METRICS_PATH = "/stats/prometheus"

# Go's strconv.ParseBool, which Istio uses for these annotations.
_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def _sanitized(key: str) -> str:
    """Prometheus' SanitizeLabelName: how Istio matches spellings of an annotation."""
    return sanitized(key)


def parse_bool(value: str) -> bool | None:
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return None


@dataclass(frozen=True)
class ScrapeAnnotations:
    """A pod's annotations as reported, and the scrape configuration for its agent
    (None: the agent merges no application metrics)."""

    annotations: dict[str, str]
    agent_config: str | None = None


def merge_enabled(annotations: Mapping[str, str]) -> bool:
    """`prometheus.istio.io/merge-metrics` (default true, as Istio's mesh default)."""
    value = parse_bool(annotations.get(MERGE_METRICS, ""))
    return True if value is None else value


def _wants_scrape(annotations: Mapping[str, str]) -> bool:
    """Istio's getPrometheusScrape: a parseable `prometheus.io/scrape` (any spelling that
    sanitizes to the same label name) decides; without one, yes."""
    wanted = _sanitized(SCRAPE)
    for key, value in annotations.items():
        if _sanitized(key) == wanted:
            parsed = parse_bool(value)
            if parsed is not None:
                return parsed
    return True


def _by_sanitized_key(annotations: Mapping[str, str]) -> dict[str, str]:
    """The three scrape annotations under their canonical keys, whatever the spelling
    (Istio's getPrometheusScrapeConfiguration)."""
    canonical = {_sanitized(key): key for key in (SCRAPE, PORT, PATH)}
    found = {}
    for key, value in annotations.items():
        name = canonical.get(_sanitized(key))
        if name is not None:
            found[name] = value
    return found


def scrape_annotations(annotations: Mapping[str, str], sidecar: bool) -> ScrapeAnnotations:
    """The pod's annotations after Istio's injector, and what its agent should scrape."""
    original = dict(annotations)
    if not sidecar or not merge_enabled(original) or not _wants_scrape(original):
        return ScrapeAnnotations(original)
    user = _by_sanitized_key(original)
    if user.get(PORT) == str(AGENT_METRICS_PORT):
        return ScrapeAnnotations(original)  # already pointing at the agent
    agent_config = None
    if user:
        config = {
            "scrape": user.get(SCRAPE, ""),
            "path": user.get(PATH, ""),
            "port": user.get(PORT, ""),
        }
        agent_config = json.dumps(config, sort_keys=True)
    cleared = {_sanitized(key) for key in (SCRAPE, PORT, PATH)}
    result = {k: v for k, v in original.items() if _sanitized(k) not in cleared}
    result[SCRAPE] = "true"
    result[PORT] = str(AGENT_METRICS_PORT)
    result[PATH] = AGENT_METRICS_PATH
    return ScrapeAnnotations(result, agent_config)
