"""Names of namespaces, links and chains: valid, bounded, and owned by exactly one mesh."""

from __future__ import annotations

import pytest

from isthmus.netns import names


def test_names_of_a_mesh() -> None:
    assert names.node_netns("isthmus") == "isthmus-node"
    assert names.pod_netns("isthmus", "order-7d9f4b6c8-x2k8q") == "isthmus-order-7d9f4b6c8-x2k8q"
    assert names.bridge_name("isthmus") == "isthmus-br"
    assert names.chain_prefix("isthmus") == "ISTHMUS"
    veth = names.veth_name("isthmus", "order-7d9f4b6c8-x2k8q")
    assert veth.startswith("isthmus") and len(veth) == names.IFNAME_MAX


@pytest.mark.parametrize("mesh", ["", "Isthmus", "is-thmus", "1mesh", "a" * 17, "mesh_1"])
def test_invalid_mesh_names_are_rejected(mesh: str) -> None:
    with pytest.raises(ValueError, match="mesh name"):
        names.validate_mesh_name(mesh)


@pytest.mark.parametrize("pod", ["", "Web", "web_1", "-web", "web-", "a/b", "x" * 254, "a b"])
def test_invalid_pod_names_are_rejected(pod: str) -> None:
    with pytest.raises(ValueError, match="pod name"):
        names.pod_netns("isthmus", pod)


def test_node_is_reserved() -> None:
    with pytest.raises(ValueError, match="reserved"):
        names.pod_netns("isthmus", "node")


def test_long_pod_names_are_truncated_with_a_hash() -> None:
    first = names.pod_netns("isthmus", "a" * 100 + "-one")
    second = names.pod_netns("isthmus", "a" * 100 + "-two")
    assert first != second
    assert len(first) <= names.NETNS_NAME_MAX and len(second) <= names.NETNS_NAME_MAX
    assert first.startswith("isthmus-aaaa")
    assert names.owns_netns("isthmus", first)


def test_link_names_fit_ifnamsiz_for_the_longest_mesh_name() -> None:
    mesh = "m" * names.MESH_NAME_MAX
    assert len(names.bridge_name(mesh)) <= names.IFNAME_MAX
    assert len(names.veth_name(mesh, "web")) == names.IFNAME_MAX
    assert len(names.chain_prefix(mesh) + "_IN_REDIRECT") <= 28
    assert names.veth_name(mesh, "web") != names.veth_name(mesh, "api")


def test_ownership_is_exact() -> None:
    assert names.owns_netns("isthmus", "isthmus-node")
    assert names.owns_netns("isthmus", "isthmus-web")
    assert not names.owns_netns("isthmus", "isthmus2-web")
    assert not names.owns_netns("isthmus", "isthmus")
    assert not names.owns_netns("isthmus", "other-isthmus-web")
