"""PeerAuthentication as Istio's webhook checks it: the seed's policy verbatim, integer
portLevelMtls keys (read as strings, as Kubernetes reads YAML), and each refusal as one
line naming the field."""

from __future__ import annotations

import pytest

from isthmus.api.errors import ApiError
from isthmus.api.loader import load_documents
from isthmus.api.security import MtlsMode, PeerAuthentication
from isthmus.demo.seed import SEED_PEER_AUTHENTICATION

PREFIX = "pa.yaml:1 PeerAuthentication production/inventory: "


def document(spec: str) -> str:
    return (
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
        "metadata: {name: inventory, namespace: production}\n" + spec
    )


def test_the_seeds_policy_loads_verbatim() -> None:
    (loaded,) = load_documents(SEED_PEER_AUTHENTICATION, "seed.yaml")

    assert isinstance(loaded.resource, PeerAuthentication)
    assert loaded.resource.spec.mtls is not None
    assert loaded.resource.spec.mtls.mode is MtlsMode.STRICT


def test_port_level_modes_take_integer_ports() -> None:
    text = document(
        "spec:\n  selector: {matchLabels: {app: inventory}}\n"
        "  portLevelMtls:\n    8080: {mode: DISABLE}\n    '9090': {mode: STRICT}\n"
    )

    (loaded,) = load_documents(text, "pa.yaml")

    assert isinstance(loaded.resource, PeerAuthentication)
    modes = {k: v.mode for k, v in loaded.resource.spec.port_level_mtls.items()}
    assert modes == {"8080": MtlsMode.DISABLE, "9090": MtlsMode.STRICT}


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        (
            "spec: {portLevelMtls: {8080: {mode: DISABLE}}}",
            "spec.portLevelMtls: portLevelMtls requires a workload selector",
        ),
        (
            "spec: {selector: {matchLabels: {app: x}}, portLevelMtls: {0: {mode: DISABLE}}}",
            "spec.portLevelMtls[0]: port must be a number in 1-65535",
        ),
        (
            "spec: {selector: {matchLabels: {app: 'x*'}}}",
            "spec.selector.matchLabels[app]: wildcards are not supported in selectors",
        ),
        ("spec: {mtls: {mode: OPTIONAL}}", "spec.mtls.mode: "),
    ],
)
def test_refusals_name_the_field(spec: str, error: str) -> None:
    with pytest.raises(ApiError) as raised:
        load_documents(document(spec), "pa.yaml")

    (line,) = raised.value.errors
    assert line.startswith(PREFIX + error), line
