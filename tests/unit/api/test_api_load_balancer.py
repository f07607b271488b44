"""DestinationRule `loadBalancer.warmup`, `warmupDurationSecs` and `localityLbSetting`
(and MeshConfig's `localityLbSetting`): accepted as Istio accepts them, refused with
Istio's reasons (webhook and CRD), one line each; zoneAwareLbSetting not supported yet."""

from __future__ import annotations

import textwrap

import pytest
from _apihelp import document, load, load_errors

from isthmus.api.mesh_config import MeshConfigError, parse_mesh_config
from isthmus.api.networking import DestinationRule

PREFIX = "app.yaml:1 DestinationRule production/reviews: spec.trafficPolicy.loadBalancer"


def rule(load_balancer: str, extra: str = "") -> str:
    body = textwrap.indent(textwrap.dedent(load_balancer).strip("\n"), "    ")
    return document(
        "DestinationRule", f"host: reviews\ntrafficPolicy:\n  loadBalancer:\n{body}\n{extra}"
    )


OUTLIER = "  outlierDetection: {consecutive5xxErrors: 3}\n"


def test_istios_valid_examples_load() -> None:
    """pkg/config/validation/testdata/crds/destinationrule-valid.yaml, and the docs'."""
    for load_balancer in (
        "warmup: {duration: 300s}",
        "warmup: {duration: 300s, minimumPercent: 5.0}",
        "warmup: {duration: 300s, minimumPercent: 5.0, aggression: 5.0}",
        "{simple: ROUND_ROBIN, warmupDurationSecs: 100s}",
        "{simple: LEAST_REQUEST, warmup: {duration: 1m, minimumPercent: 0}}",
        """
        localityLbSetting:
          enabled: true
          distribute:
          - from: us-west/zone1/*
            to: {"us-west/zone1/*": 80, "us-west/zone2/*": 20}
          - from: us-west/zone2/*
            to: {"us-west/zone1/*": 20, "us-west/zone2/*": 80}
        """,
        "localityLbSetting: {failover: [{from: us-east, to: eu-west}]}",
        "localityLbSetting: {failoverPriority: [topology.istio.io/network, app=reviews]}",
        "localityLbSetting: {failover: [{from: a, to: b}], failoverPriority: [app]}",
        "localityLbSetting: {enabled: false}",
    ):
        (loaded,) = load(rule(load_balancer, OUTLIER))
        assert isinstance(loaded.resource, DestinationRule)


def test_failover_without_outlier_detection_is_accepted_as_istio_does() -> None:
    """Istio only warns: failover then never happens (nor in isthmus)."""
    load(rule("localityLbSetting: {failover: [{from: a, to: b}]}"))


@pytest.mark.parametrize(
    ("load_balancer", "error"),
    [
        # Istio's destinationrule-invalid.yaml and webhook messages.
        ("warmup: {duration: 300s, minimumPercent: 150.0}", ".warmup.minimumPercent: must be "),
        ("warmup: {minimumPercent: 5.0}", ".warmup.duration: "),
        ("warmup: {duration: 300s, aggression: -0.1}", ".warmup.aggression: must be greater "),
        ("warmup: {duration: 300s, aggression: 0}", ".warmup.aggression: must be greater "),
        ("warmup: {duration: 0s}", ".warmup.duration: duration must be at least 1ms"),
        ("warmupDurationSecs: 0.5ms", ".warmupDurationSecs: duration must be at least 1ms"),
        # Stricter than Istio, which would ignore the field.
        (
            "{warmup: {duration: 1s}, warmupDurationSecs: 1s}",
            ".warmupDurationSecs: set only one of warmup and warmupDurationSecs",
        ),
        ("{simple: RANDOM, warmup: {duration: 1s}}", ".warmup: has no effect with simple RANDOM"),
        (
            "{simple: PASSTHROUGH, warmupDurationSecs: 1s}",
            ".warmupDurationSecs: has no effect with simple PASSTHROUGH",
        ),
        (
            "{consistentHash: {useSourceIp: true}, warmup: {duration: 1s}}",
            ".warmup: has no effect with consistentHash",
        ),
        # ValidateLocalityLbSetting.
        (
            "localityLbSetting: {distribute: [{from: a, to: {a: 100}}],"
            " failover: [{from: a, to: b}]}",
            ".localityLbSetting: can not simultaneously specify 'distribute' and 'failover'",
        ),
        (
            "localityLbSetting: {failover: [{from: a, to: b}],"
            " failoverPriority: [topology.kubernetes.io/zone]}",
            ".localityLbSetting.failoverPriority: can not simultaneously set 'failover' and "
            "topology label 'topology.kubernetes.io/zone'",
        ),
        (
            "localityLbSetting: {distribute: [{from: a, to: {a: 80, b: 30}}]}",
            ".localityLbSetting.distribute[0].to: total locality weight 110 != 100",
        ),
        (
            "localityLbSetting: {distribute: [{from: a, to: {a: 0, b: 100}}]}",
            ".localityLbSetting.distribute[0].to: locality weight must be in range [1, 100]",
        ),
        (
            "localityLbSetting: {distribute: [{from: a, to: {a/*/c: 100}}]}",
            ".localityLbSetting.distribute[0].to: locality a/*/c wildcard '*' number can not "
            "exceed 1 and must be in the end",
        ),
        (
            "localityLbSetting: {distribute: [{from: a//c, to: {a: 100}}]}",
            ".localityLbSetting.distribute: locality a//c must not contain empty "
            "region/zone/subzone info",
        ),
        (
            "localityLbSetting: {distribute: [{from: a, to: {a: 100}}, {from: a/b, to: {a: 100}}]}",
            ".localityLbSetting.distribute: locality a/b overlap with previous specified ones",
        ),
        (
            "localityLbSetting: {failover: [{from: a, to: a}]}",
            ".localityLbSetting.failover[0]: locality lb failover settings must specify "
            "different regions",
        ),
        (
            "localityLbSetting: {failover: [{from: a/z, to: b}]}",
            ".localityLbSetting.failover[0]: locality lb failover only specify region",
        ),
        (
            "localityLbSetting: {failover: [{from: a, to: '*'}]}",
            ".localityLbSetting.failover[0]: locality lb failover region should not contain "
            "'*' wildcard",
        ),
        (
            "localityLbSetting: {distribute: [{from: a, to: {a: 100}}], failoverPriority: [x]}",
            ".localityLbSetting.failoverPriority: can not be set with 'distribute'",
        ),
        ("zoneAwareLbSetting: {}", ".zoneAwareLbSetting: not supported yet"),
    ],
)
def test_refused_with_istios_reason(load_balancer: str, error: str) -> None:
    (line,) = load_errors(rule(load_balancer, OUTLIER))
    assert line.startswith(PREFIX + error), line


def test_subset_and_port_level_settings_are_checked_too() -> None:
    text = document(
        "DestinationRule",
        """
        host: reviews
        subsets:
        - name: v1
          trafficPolicy:
            loadBalancer: {warmup: {duration: 1s, aggression: 0}}
            portLevelSettings:
            - port: {number: 80}
              loadBalancer: {localityLbSetting: {failover: [{from: a, to: a}]}}
        """,
    )
    errors = load_errors(text)
    assert any("subsets[0].trafficPolicy.loadBalancer.warmup.aggression" in e for e in errors)
    assert any(
        "subsets[0].trafficPolicy.portLevelSettings[0].loadBalancer.localityLbSetting.failover[0]"
        in e
        for e in errors
    )


def test_mesh_config_locality_setting_is_read_and_checked() -> None:
    config = parse_mesh_config("localityLbSetting: {enabled: false}", "m.yaml")
    assert config.locality_lb_setting is not None
    assert config.locality_lb_setting.enabled is False
    with pytest.raises(MeshConfigError) as raised:
        parse_mesh_config("localityLbSetting: {failover: [{from: a, to: a}]}", "m.yaml")
    assert str(raised.value) == (
        "m.yaml: localityLbSetting.failover[0]: locality lb failover settings must specify "
        "different regions"
    )
