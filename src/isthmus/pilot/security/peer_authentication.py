"""Which mTLS mode a workload's sidecar accepts on each port: Istio's PeerAuthentication
precedence (ComposePeerAuthentication).

The oldest policy wins within a scope (mesh: root namespace without selector; namespace:
the workload's namespace without selector; workload: the workload's namespace with a
matching selector). Each non-UNSET mode overrides the wider scope; with no policy at all
the mode is PERMISSIVE. Port-level modes come from the workload policy only, and UNSET
there inherits the workload's composed mode.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from isthmus.api.security import MtlsMode, PeerAuthentication
from isthmus.model.snapshot import ConfigEntry


@dataclass(frozen=True)
class MtlsPolicy:
    """The composed policy of one workload: a mode, and per workload port overrides."""

    mode: MtlsMode = MtlsMode.PERMISSIVE
    port_modes: Mapping[int, MtlsMode] = field(default_factory=dict)

    def for_port(self, port: int) -> MtlsMode:
        return self.port_modes.get(port, self.mode)


def _oldest(
    entries: Iterable[ConfigEntry[PeerAuthentication]],
) -> ConfigEntry[PeerAuthentication] | None:
    return min(entries, key=lambda e: (e.created_revision, e.namespace, e.name), default=None)


def _mode(entry: ConfigEntry[PeerAuthentication] | None) -> MtlsMode:
    mtls = entry.resource.spec.mtls if entry else None
    return mtls.mode if mtls else MtlsMode.UNSET


def _selector(entry: ConfigEntry[PeerAuthentication]) -> Mapping[str, str]:
    selector = entry.resource.spec.selector
    return selector.match_labels if selector else {}


def compose_mtls(
    policies: Iterable[ConfigEntry[PeerAuthentication]],
    namespace: str,
    labels: Mapping[str, str],
    root_namespace: str,
) -> MtlsPolicy:
    """The mTLS policy in effect for a workload in `namespace` with `labels`."""
    mesh: list[ConfigEntry[PeerAuthentication]] = []
    scoped: list[ConfigEntry[PeerAuthentication]] = []
    workload: list[ConfigEntry[PeerAuthentication]] = []
    for entry in policies:
        selector = _selector(entry)
        if not selector:
            if entry.namespace == root_namespace:
                mesh.append(entry)
            elif entry.namespace == namespace:
                scoped.append(entry)
        elif (
            entry.namespace == namespace
            and entry.namespace != root_namespace
            and all(labels.get(k) == v for k, v in selector.items())
        ):
            workload.append(entry)
    mode = MtlsMode.PERMISSIVE
    for chosen in (_oldest(mesh), _oldest(scoped)):
        if _mode(chosen) is not MtlsMode.UNSET:
            mode = _mode(chosen)
    policy = _oldest(workload)
    if policy is None:
        return MtlsPolicy(mode)
    if _mode(policy) is not MtlsMode.UNSET:
        mode = _mode(policy)
    ports = {
        int(port): mode if mtls.mode is MtlsMode.UNSET else mtls.mode
        for port, mtls in policy.resource.spec.port_level_mtls.items()
    }
    return MtlsPolicy(mode, ports)
