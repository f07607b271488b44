"""What the node runtime knows of isthmusd's objects: a cache fed by list and watch.

The node runtime never reads the control plane's store; it mirrors the kinds it acts on
(Deployments, Namespaces, and the Pod objects it reports, whose deletionTimestamp is how
`isthmus delete pod` reaches it) from isthmusd's watch API, as a kubelet's informer does.
Until the first full listing arrives (`synced`) the cache says nothing about what should
run, so a node runtime that starts while isthmusd is away adopts and supervises its pods
but neither creates nor deletes any.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from isthmus.api.base import Resource
from isthmus.api.core import Deployment, Namespace
from isthmus.api.errors import ApiError
from isthmus.api.loader import parse_resource
from isthmus.model.pods import DELETION_TIMESTAMP
from isthmus.store import ObjectKey

log = logging.getLogger("isthmus.runtime")

WATCHED_KINDS = ("Deployment", "Namespace", "Pod")
INJECTION_LABEL = "istio-injection"


def body_key(body: dict[str, Any]) -> ObjectKey:
    meta = body.get("metadata") or {}
    return ObjectKey(str(body.get("kind", "")), str(meta.get("namespace") or ""), meta["name"])


class ObjectCache:
    def __init__(self) -> None:
        self._bodies: dict[ObjectKey, dict[str, Any]] = {}
        self._parsed: dict[ObjectKey, tuple[str, Resource]] = {}
        self.synced = False
        self.revision = 0

    def replace(self, bodies: Iterable[dict[str, Any]], revision: int) -> None:
        """A full listing: everything the cache held is replaced."""
        self._bodies = {body_key(b): b for b in bodies}
        self._parsed = {k: v for k, v in self._parsed.items() if k in self._bodies}
        self.revision = revision
        self.synced = True

    def put(self, body: dict[str, Any], revision: int) -> None:
        self._bodies[body_key(body)] = body
        self.revision = revision

    def remove(self, body: dict[str, Any], revision: int) -> None:
        key = body_key(body)
        self._bodies.pop(key, None)
        self._parsed.pop(key, None)
        self.revision = revision

    def _resources(self, kind: str) -> list[Resource]:
        out = []
        for key, body in self._bodies.items():
            if key.kind != kind:
                continue
            version = str(body.get("metadata", {}).get("resourceVersion", ""))
            cached = self._parsed.get(key)
            if cached is None or cached[0] != version:
                try:
                    cached = (version, parse_resource(body))
                except ApiError as exc:  # isthmusd validated it; a newer schema may differ
                    log.warning("runtime object_unparsable key=%s error=%r", key, str(exc))
                    continue
                self._parsed[key] = cached
            out.append(cached[1])
        return out

    def deployments(self) -> list[Deployment]:
        return [d for d in self._resources("Deployment") if isinstance(d, Deployment)]

    def injection_disabled_namespaces(self) -> set[str]:
        return {
            ns.metadata.name
            for ns in self._resources("Namespace")
            if isinstance(ns, Namespace) and ns.metadata.labels.get(INJECTION_LABEL) == "disabled"
        }

    def deletion_requested(self, namespace: str, name: str) -> bool:
        """Whether `isthmus delete pod` marked this pod (its Pod object has a deletionTimestamp)."""
        body = self._bodies.get(ObjectKey("Pod", namespace, name))
        return bool(body and body.get("metadata", {}).get(DELETION_TIMESTAMP))
