"""MeshConfig pathNormalization -> the HttpConnectionManager fields Istio sets for it."""

from __future__ import annotations

import pytest
from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)

from isthmus.pilot.envoy.http_connection_manager import HCM_FILTER, inline_connection_manager
from isthmus.pilot.envoy.listener import http_chain, socket_address
from isthmus.pilot.envoy.path_normalization import (
    PATH_NORMALIZATION_MODES,
    apply_path_normalization,
)
from isthmus.pilot.envoy.typed import pack
from isthmus.testing.validate import validate_resources

Manager = hcm.HttpConnectionManager
KEEP, UNESCAPE = Manager.KEEP_UNCHANGED, Manager.UNESCAPE_AND_FORWARD


def manager() -> hcm.HttpConnectionManager:
    built = Manager()
    inline_connection_manager(
        "inbound_0.0.0.0_8080", route_pb2.RouteConfiguration(name="inbound|8080||")
    ).typed_config.Unpack(built)
    return built


@pytest.mark.parametrize(
    ("mode", "normalize", "merge", "escaped"),
    [
        ("NONE", False, False, KEEP),
        ("BASE", True, False, KEEP),
        ("DEFAULT", True, False, KEEP),
        ("MERGE_SLASHES", True, True, KEEP),
        ("DECODE_AND_MERGE_SLASHES", True, True, UNESCAPE),
    ],
)
def test_modes_set_the_three_fields(mode: str, normalize: bool, merge: bool, escaped: int) -> None:
    # Start from the opposite of what the mode wants, so every field must be written.
    built = manager()
    built.normalize_path.value = not normalize
    built.merge_slashes = not merge
    built.path_with_escaped_slashes_action = UNESCAPE if escaped == KEEP else KEEP

    apply_path_normalization(built, mode)

    assert built.HasField("normalize_path") and built.normalize_path.value is normalize
    assert built.merge_slashes is merge
    assert built.path_with_escaped_slashes_action == escaped


def test_base_is_the_default() -> None:
    built = manager()
    built.merge_slashes = True

    apply_path_normalization(built)

    assert built.normalize_path.value and not built.merge_slashes


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown path normalization 'STRICT'"):
        apply_path_normalization(manager(), "STRICT")


@pytest.mark.envoy
def test_envoy_accepts_every_mode() -> None:
    listeners = []
    for port, mode in enumerate(sorted(PATH_NORMALIZATION_MODES), start=18080):
        built = manager()
        apply_path_normalization(built, mode)
        listener = listener_pb2.Listener(name=mode, address=socket_address("127.0.0.1", port))
        chain = http_chain(mode, lc.Filter(name=HCM_FILTER, typed_config=pack(built)))
        listener.filter_chains.append(chain)
        listeners.append(listener)

    validate_resources(listeners=listeners)
