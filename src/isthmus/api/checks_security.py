"""PeerAuthentication checks, as Istio's webhook (ValidatePeerAuthentication) applies them."""

from __future__ import annotations

from isthmus.api.checks_common import check_workload_selector
from isthmus.api.errors import FieldPath, Problems
from isthmus.api.security import PeerAuthentication


def check_peer_authentication(policy: PeerAuthentication, problems: Problems) -> None:
    spec = policy.spec
    path = FieldPath("spec")
    labels = spec.selector.match_labels if spec.selector else {}
    if spec.selector is not None:
        check_workload_selector(problems, path.field("selector").field("matchLabels"), labels)
    ports = path.field("portLevelMtls")
    if spec.port_level_mtls and not labels:
        # Istio: port-level settings need a workload selector (ports differ per workload).
        problems.add(ports, "portLevelMtls requires a workload selector")
    for key in spec.port_level_mtls:
        if not (key.isascii() and key.isdigit() and 1 <= int(key) <= 65535):
            problems.add(ports.key(key), "port must be a number in 1-65535")
