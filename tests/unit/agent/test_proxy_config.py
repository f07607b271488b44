"""The proxy.istio.io/config annotation: the fields the agent honours, and clear refusals."""

from __future__ import annotations

from datetime import timedelta

import pytest

from isthmus.agent.proxy_config import (
    ProxyConfigOverrides,
    envoy_concurrency,
    proxy_config_from_annotation,
)


def test_yaml_as_istio_documents_it() -> None:
    text = "concurrency: 4\nterminationDrainDuration: 12s\n"
    assert proxy_config_from_annotation(text) == ProxyConfigOverrides(
        concurrency=4, termination_drain_duration=timedelta(seconds=12)
    )


def test_json_and_protobuf_string_numbers() -> None:
    overrides = proxy_config_from_annotation(
        '{"concurrency": "3", "terminationDrainDuration": "1.5s"}'
    )
    assert overrides.concurrency == 3
    assert overrides.termination_drain_duration == timedelta(milliseconds=1500)


@pytest.mark.parametrize("text", ["", "   \n", "# nothing set\n"])
def test_empty_annotation_sets_nothing(text: str) -> None:
    assert proxy_config_from_annotation(text) == ProxyConfigOverrides()


def test_other_proxy_config_fields_are_reported_as_ignored() -> None:
    text = (
        "holdApplicationUntilProxyStarts: true\nproxyMetadata: {A: b, SECRET_TTL: 1m}\n"
        "concurrency: 0\n"
    )
    overrides = proxy_config_from_annotation(text)
    assert overrides.concurrency == 0
    assert overrides.ignored == ("holdApplicationUntilProxyStarts", "proxyMetadata.A")
    assert overrides.secret_ttl == "1m"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("concurrency: two", "concurrency must be a whole number, got 'two'"),
        ("concurrency: true", "concurrency must be a whole number, got True"),
        ("concurrency: 1.5", "concurrency must be a whole number, got 1.5"),
        ("concurrency: -1", "concurrency -1 is out of range"),
        ("concurrency: 100000", "concurrency 100000 is out of range"),
        ("terminationDrainDuration: 5", 'must be a duration like "5s", got 5'),
        ("terminationDrainDuration: 5x", "unknown unit"),
        ("terminationDrainDuration: -5s", "must not be negative"),
        ("- concurrency: 2", "must be a map of ProxyConfig fields, got list"),
        ("concurrency: 2\n---\nconcurrency: 3\n", "one YAML document"),
        ("concurrency: [1", "line"),
        ("concurrency: 1\nconcurrency: 2\n", "duplicate"),
    ],
)
def test_bad_input_is_a_value_error_naming_the_annotation(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=r"annotation proxy\.istio\.io/config: ") as raised:
        proxy_config_from_annotation(text)
    assert message in str(raised.value)


def test_alias_bomb_is_refused_not_expanded() -> None:
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    with pytest.raises(ValueError, match=r"proxy.istio.io/config"):
        proxy_config_from_annotation("\n".join(lines))


def test_concurrency_zero_means_one_worker_per_cpu() -> None:
    assert envoy_concurrency(3) == 3
    assert envoy_concurrency(0) >= 1
