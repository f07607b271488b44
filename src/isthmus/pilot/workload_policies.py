"""Which workload-scoped policies (AuthorizationPolicy, RequestAuthentication) apply to a
workload: those of the given namespaces, in that order, whose selector's labels are all
among the workload's (no selector: every workload); oldest first within a namespace, as
Istio lists them. Each kind passes its own namespace order (Istio's differ)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol, TypeVar


class _Selector(Protocol):
    @property
    def match_labels(self) -> Mapping[str, str]: ...


class _Spec(Protocol):
    @property
    def selector(self) -> _Selector | None: ...


class _Policy(Protocol):
    @property
    def spec(self) -> _Spec: ...


class _Entry(Protocol):
    @property
    def namespace(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def created_revision(self) -> int: ...
    @property
    def resource(self) -> _Policy: ...


E = TypeVar("E", bound=_Entry)


def selects(policy: _Policy, labels: Mapping[str, str]) -> bool:
    """Every matchLabels pair is among the workload's labels (no selector: all match)."""
    selector = policy.spec.selector
    if selector is None:
        return True
    return all(labels.get(key) == value for key, value in selector.match_labels.items())


def policies_in_scopes(
    entries: Sequence[E], scopes: Iterable[str], labels: Mapping[str, str]
) -> list[E]:
    oldest_first = sorted(entries, key=lambda p: (p.created_revision, p.name, p.namespace))
    return [
        entry
        for scope in dict.fromkeys(scopes)
        for entry in oldest_first
        if entry.namespace == scope and selects(entry.resource, labels)
    ]
