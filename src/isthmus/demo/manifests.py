"""The tour's manifests (demo/manifests/*.yaml) and the seed-derived rollback.

The workload manifests are Kubernetes YAML; their containers' `command` names
`${PYTHON}`, filled in with the running interpreter, since the local runtime runs
commands on this machine and records `image` without using it.
"""

from __future__ import annotations

import sys
from importlib.resources import files
from string import Template
from typing import Any

import yaml

from isthmus.demo.seed import SEED_YAML

NAMESPACE = "production"
WORKLOAD_FILES = ("00-namespace.yaml", "10-inventory.yaml", "20-callers.yaml")
CALLERS = ("order-service", "cart-service", "search-service")
CALLER_PATHS = {"order-service": "/orders", "cart-service": "/cart", "search-service": "/search"}


def _read(name: str) -> str:
    return files("isthmus.demo").joinpath("manifests", name).read_text()


def workloads(python: str = sys.executable) -> str:
    """Namespace, service accounts, Services and Deployments, with `python` as interpreter."""
    text = "\n---\n".join(_read(name) for name in WORKLOAD_FILES)
    return Template(text).substitute(PYTHON=python)


def replicas(text: str) -> dict[str, int]:
    """Deployment name -> replicas, as the manifests ask."""
    out: dict[str, int] = {}
    for doc in yaml.safe_load_all(text):
        if isinstance(doc, dict) and doc.get("kind") == "Deployment":
            spec: dict[str, Any] = doc.get("spec") or {}
            out[str(doc["metadata"]["name"])] = int(spec.get("replicas", 1))
    return out


def routing_only() -> str:
    """The seed's subsets and routes without its timeout, retries and traffic policy."""
    return _read("inventory-routing-only.yaml")


def rollback_vs() -> str:
    """The seed's VirtualService with the canary's weight set to 0 (its step 5)."""
    vs = SEED_YAML[SEED_YAML.index("# VirtualService") :]
    rolled = vs.replace("weight: 95", "weight: 100").replace("weight: 5", "weight: 0")
    if rolled == vs:
        raise ValueError("the seed's VirtualService no longer has the 95/5 weights")
    return rolled
