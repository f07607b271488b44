"""The agent's flags: explicit flags over the annotation over defaults, one-line errors."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from isthmus.agent.options import (
    DEFAULT_CONCURRENCY,
    DEFAULT_DRAIN_SECONDS,
    MtlsOptions,
    OptionsError,
    parse_options,
)

REQUIRED = [
    *("--pod", "web-7d9f-x2k8q", "--namespace", "shop", "--ip", "10.44.0.9"),
    *("--xds-socket", "/run/isthmus/xds.sock", "--workdir", "/run/isthmus/pods/web"),
]


def test_flags_describe_the_pod() -> None:
    options = parse_options(
        [
            *REQUIRED,
            *("--labels", '{"app": "web", "version": "v2"}', "--service-account", "web"),
            *("--workload", "web", "--inbound-ports", "9090, 8080", "--http-proxy-port", "15080"),
        ],
        environ={},
    )
    pod = options.identity
    assert pod.node_id == "sidecar~10.44.0.9~web-7d9f-x2k8q.shop~shop.svc.cluster.local"
    assert pod.labels == {"app": "web", "version": "v2"}
    assert (pod.inbound_ports, pod.http_proxy_port) == ((8080, 9090), 15080)
    assert options.workdir == Path("/run/isthmus/pods/web")
    assert (options.admin_port, options.readiness_port, options.stats_port) == (15000, 15021, 15090)
    assert options.listen_address == "0.0.0.0"


def test_defaults_without_annotation() -> None:
    options = parse_options(REQUIRED, environ={})
    assert options.concurrency == DEFAULT_CONCURRENCY
    assert options.drain_duration == DEFAULT_DRAIN_SECONDS
    assert options.identity.workload == "web-7d9f-x2k8q"
    assert options.identity.service_account == "default"
    assert options.switch_user


def test_envoy_may_keep_the_agents_user() -> None:
    assert not parse_options([*REQUIRED, "--no-proxy-user"], environ={}).switch_user


def test_annotation_sets_defaults_and_flags_win() -> None:
    annotation = "concurrency: 4\nterminationDrainDuration: 20s\ntracing: {}\n"
    from_annotation = parse_options([*REQUIRED, "--proxy-config", annotation], environ={})
    assert (from_annotation.concurrency, from_annotation.drain_duration) == (4, 20.0)
    assert from_annotation.ignored_proxy_config == ("tracing",)
    flags = parse_options(
        [*REQUIRED, "--proxy-config", annotation, "--concurrency", "1", "--drain-duration", "1.5s"],
        environ={},
    )
    assert (flags.concurrency, flags.drain_duration) == (1, 1.5)


def test_annotation_from_the_environment_as_istio_injects_it() -> None:
    options = parse_options(REQUIRED, environ={"PROXY_CONFIG": '{"concurrency": 3}'})
    assert options.concurrency == 3


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--labels", "[1]"], "--labels must be a JSON object"),
        (["--labels", "{app"], "--labels is not JSON"),
        (["--inbound-ports", "80,http"], "'http' is not a port number"),
        (["--inbound-ports", "99999"], "inbound port 99999 is out of range"),
        (["--ip", "localhost"], "not an IP address"),
        (["--drain-duration", "5"], "--drain-duration: invalid duration"),
        (["--concurrency", "-2"], "--concurrency -2 must not be negative"),
        (["--readiness-port", "0"], "--readiness-port 0 is out of range"),
        (["--proxy-config", "concurrency: x"], "proxy.istio.io/config"),
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--cert-ttl", "59s"], "--cert-ttl '59s' is shorter than the minimum 1m"),
        (["--cert-ttl", "1d"], "--cert-ttl: invalid duration"),
        (["--key-type", "DSA"], "--key-type: invalid choice: 'DSA'"),
        (["--trust-domain", "Example.COM"], "--trust-domain: trust domain 'Example.COM'"),
        (
            ["--token-file", "/t", "--service-account", "a:b"],
            "--token-file: service account 'a:b' can not be part of a SPIFFE id",
        ),
    ],
)
def test_bad_flags_are_one_clear_error(extra: list[str], message: str) -> None:
    with pytest.raises(OptionsError) as raised:
        parse_options([*REQUIRED, *extra], environ={})
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_missing_required_flag() -> None:
    with pytest.raises(OptionsError, match="--pod"):
        parse_options(REQUIRED[2:], environ={})


def test_without_a_token_file_there_is_no_mtls() -> None:
    assert parse_options(REQUIRED, environ={}).mtls is None
    # The other security flags are still checked, but turn nothing on.
    assert parse_options([*REQUIRED, "--cert-ttl", "1h"], environ={}).mtls is None


def test_a_token_file_turns_on_mtls_with_istios_defaults() -> None:
    options = parse_options([*REQUIRED, "--token-file", "/run/pod/token"], environ={})
    assert options.mtls == MtlsOptions(
        ca_socket="/run/isthmus/xds.sock",
        token_file=Path("/run/pod/token"),
        trust_domain="cluster.local",
        cert_ttl=timedelta(hours=24),
        key_type="RSA",
        identity="spiffe://cluster.local/ns/shop/sa/default",
    )


def test_mtls_flags() -> None:
    options = parse_options(
        [
            *REQUIRED,
            *("--token-file", "/run/pod/token", "--ca-socket", "/run/isthmus/ca.sock"),
            *("--trust-domain", "example.org", "--cert-ttl", "1h30m", "--key-type", "ECDSA"),
            *("--service-account", "web"),
        ],
        environ={},
    )
    assert options.mtls is not None
    assert options.mtls.ca_socket == "/run/isthmus/ca.sock"
    assert options.mtls.cert_ttl == timedelta(hours=1, minutes=30)
    assert options.mtls.key_type == "ECDSA"
    assert options.mtls.identity == "spiffe://example.org/ns/shop/sa/web"
    minimum = parse_options([*REQUIRED, "--token-file", "/t", "--cert-ttl", "1m"], environ={})
    assert minimum.mtls is not None
    assert minimum.mtls.cert_ttl == timedelta(minutes=1)


def test_the_pods_secret_ttl_sets_the_certificate_lifetime_unless_the_flag_does() -> None:
    token = ("--token-file", "/run/pod/token")
    annotation = ("--proxy-config", "proxyMetadata: {SECRET_TTL: 1m}")

    from_annotation = parse_options([*REQUIRED, *token, *annotation], environ={})
    from_flag = parse_options([*REQUIRED, *token, *annotation, "--cert-ttl", "2h"], environ={})

    assert from_annotation.mtls is not None and from_flag.mtls is not None
    assert from_annotation.mtls.cert_ttl == timedelta(minutes=1)
    assert from_flag.mtls.cert_ttl == timedelta(hours=2)
    with pytest.raises(OptionsError, match=r"proxyMetadata\.SECRET_TTL '10s' is shorter"):
        parse_options(
            [*REQUIRED, *token, "--proxy-config", "proxyMetadata: {SECRET_TTL: 10s}"], environ={}
        )


def test_the_pods_ecc_signature_algorithm_picks_an_ecdsa_key() -> None:
    token = ("--token-file", "/run/pod/token")
    ecdsa = ("--proxy-config", "proxyMetadata: {ECC_SIGNATURE_ALGORITHM: ECDSA}")

    chosen = parse_options([*REQUIRED, *token, *ecdsa], environ={})
    flag = parse_options([*REQUIRED, *token, *ecdsa, "--key-type", "RSA"], environ={})

    assert chosen.mtls is not None and chosen.mtls.key_type == "ECDSA"
    assert flag.mtls is not None and flag.mtls.key_type == "RSA"
    with pytest.raises(OptionsError, match="ECC_SIGNATURE_ALGORITHM"):
        parse_options(
            [*REQUIRED, *token, "--proxy-config", "proxyMetadata: {ECC_SIGNATURE_ALGORITHM: DSA}"],
            environ={},
        )
