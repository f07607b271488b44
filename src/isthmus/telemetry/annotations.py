"""The `prometheus.io/*` pod annotations, as Prometheus's kubernetes-pods job and Istio's
injector read them: one spelling for the runtime that writes them and isthmusd's
service discovery that reads them."""

from __future__ import annotations

import re

SCRAPE = "prometheus.io/scrape"
PORT = "prometheus.io/port"
PATH = "prometheus.io/path"
SCHEME = "prometheus.io/scheme"
_INVALID_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]")


def sanitized(name: str) -> str:
    """Prometheus' SanitizeLabelName: annotation keys as relabelling sees them."""
    return _INVALID_LABEL_CHARS.sub("_", name)
