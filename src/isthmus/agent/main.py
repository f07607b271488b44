"""isthmus-agent: the per-pod sidecar agent (Istio's pilot-agent).

It writes the sidecar's bootstrap, proxies Envoy's xDS stream (and its spans) to
isthmusd, with mutual TLS obtains and renews the pod's certificate and serves it to
Envoy over SDS, supervises Envoy, answers the pod's readiness probe and serves its
merged metrics (Envoy's, its own and the application's), until SIGTERM or SIGINT; then
it drains Envoy for the drain duration, stops it and exits 0. Setup failures exit 1
with one log line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path

from isthmus.agent import _log
from isthmus.agent.admin import EnvoyAdmin
from isthmus.agent.bootstrap import sidecar_bootstrap
from isthmus.agent.certificate_manager import STATUS_FILE_NAME, CertificateManager
from isthmus.agent.certificates import CaClient
from isthmus.agent.envoy_process import (
    DRAIN_PATHS,
    ROUTER_DRAIN_PATHS,
    EnvoySettings,
    EnvoySupervisor,
    envoy_binary,
)
from isthmus.agent.metrics import MetricsServer
from isthmus.agent.options import AgentOptions, MtlsOptions, OptionsError, parse_options
from isthmus.agent.proxy_config import envoy_concurrency
from isthmus.agent.proxy_user import (
    ProxyUser,
    WorkdirUnusable,
    prepare_workdir,
    proxy_user,
    share_file,
    share_stdout,
)
from isthmus.agent.readiness import ReadinessServer
from isthmus.agent.sds import SDS_SOCKET_NAME, SdsServer
from isthmus.agent.xds_proxy import XDS_SOCKET_NAME, ZIPKIN_SOCKET_NAME, XdsProxy
from isthmus.model.identity import PeerLabels
from isthmus.sidecar_status import EnvoyRestartRecord

BOOTSTRAP_NAME = "envoy-bootstrap.json"
ENVOY_LOG_NAME = "envoy.log"
_MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes with the terminating NUL


class SetupError(RuntimeError):
    """The agent can not start: a port is taken, the work dir is unusable, ..."""


def _install_stop_signals(stop: asyncio.Event, received: list[str]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):

        def on_signal(name: str = sig.name) -> None:
            received.append(name)
            stop.set()

        loop.add_signal_handler(sig, on_signal)


async def run_agent(options: AgentOptions, stop: asyncio.Event | None = None) -> int:
    """Run until `stop` is set or SIGTERM/SIGINT arrives; 0 after a clean drain."""
    stop = stop or asyncio.Event()
    received: list[str] = []
    _install_stop_signals(stop, received)
    user = proxy_user() if options.switch_user else None
    identity = options.identity
    _log.log(
        logging.INFO,
        "starting",
        node=identity.node_id,
        workdir=options.workdir,
        envoy_uid=user.uid if user else os.geteuid(),
    )
    if options.ignored_proxy_config:
        _log.log(
            logging.INFO, "proxy_config_ignored", fields=",".join(options.ignored_proxy_config)
        )
    async with AsyncExitStack() as stack:
        try:
            await _start(options, user, stack)
        except (SetupError, WorkdirUnusable, OSError) as error:
            _log.log(logging.ERROR, "setup_failed", error=error)
            return 1
        await stop.wait()
        _log.log(logging.INFO, "stopping", signal=received[0] if received else "request")
        # Leaving the stack drains and stops Envoy, then the servers it needed.
    _log.log(logging.INFO, "stopped")
    return 0


async def _start(options: AgentOptions, user: ProxyUser | None, stack: AsyncExitStack) -> None:
    """Bring up, in order, everything Envoy needs, then Envoy; `stack` undoes it all."""
    workdir = options.workdir
    xds_path = workdir / XDS_SOCKET_NAME
    sds_path = workdir / SDS_SOCKET_NAME if options.mtls is not None else None
    zipkin_path = workdir / ZIPKIN_SOCKET_NAME if options.zipkin_socket is not None else None
    for path in (xds_path, sds_path, zipkin_path):
        if path is not None and len(os.fsencode(path)) > _MAX_SOCKET_PATH:
            raise SetupError(
                f"workdir {workdir} is too deep for a unix socket path; use a shorter one"
            )
    prepare_workdir(workdir, user)
    share_stdout(user)

    bootstrap_path = workdir / BOOTSTRAP_NAME
    document = sidecar_bootstrap(
        options.identity,
        str(xds_path),
        options.admin_port,
        options.stats_port,
        stats_address=options.listen_address,
        sds_socket=str(sds_path) if sds_path is not None else None,
        zipkin_socket=str(zipkin_path) if zipkin_path is not None else None,
    )
    bootstrap_path.write_text(json.dumps(document, indent=1))
    share_file(bootstrap_path, user)
    log_path = workdir / ENVOY_LOG_NAME
    log_path.touch()
    share_file(log_path, user, writable=True)

    xds = XdsProxy(xds_path, options.xds_socket, user)
    await xds.start()
    stack.push_async_callback(xds.stop)
    if options.zipkin_socket is not None and zipkin_path is not None:
        zipkin = XdsProxy(zipkin_path, options.zipkin_socket, user, kind="zipkin")
        await zipkin.start()
        stack.push_async_callback(zipkin.stop)
    if options.mtls is not None and sds_path is not None:
        await _start_certificates(options.mtls, sds_path, workdir, user, stack)
    admin = EnvoyAdmin(options.admin_port)
    stack.push_async_callback(admin.close)
    readiness = ReadinessServer(admin, options.listen_address, options.readiness_port)
    try:
        await readiness.start()
    except OSError as error:
        raise SetupError(
            f"readiness port {options.listen_address}:{options.readiness_port}: {error.strerror}"
        ) from None
    stack.push_async_callback(readiness.stop)
    metrics = MetricsServer(
        admin,
        options.listen_address,
        options.metrics_port,
        workdir=workdir,
        app=options.app_metrics,
    )
    try:
        await metrics.start()
    except OSError as error:
        raise SetupError(
            f"metrics port {options.listen_address}:{options.metrics_port}: {error.strerror}"
        ) from None
    stack.push_async_callback(metrics.stop)

    settings = EnvoySettings(
        binary=options.envoy_binary or envoy_binary(),
        bootstrap_path=bootstrap_path,
        log_path=log_path,
        concurrency=envoy_concurrency(options.concurrency),
        drain_duration=options.drain_duration,
        log_level=options.envoy_log_level,
        environment=PeerLabels.of(
            options.identity.labels, options.identity.workload, options.identity.namespace
        ).environment(),
        drain_paths=ROUTER_DRAIN_PATHS if options.identity.router else DRAIN_PATHS,
    )
    restarts = EnvoyRestartRecord(workdir)
    supervisor = EnvoySupervisor(settings, admin, user, on_started=restarts.envoy_started)

    async def stop_envoy() -> None:
        # Reached on the way out, whatever the reason: readiness fails first.
        readiness.draining = True
        await supervisor.stop()

    await supervisor.start()
    stack.push_async_callback(stop_envoy)


async def _start_certificates(
    mtls: MtlsOptions,
    sds_path: Path,
    workdir: Path,
    user: ProxyUser | None,
    stack: AsyncExitStack,
) -> None:
    """SDS first, then the manager that fills it; Envoy waits for the secrets it needs."""
    sds = SdsServer(sds_path, user)
    await sds.start()
    stack.push_async_callback(sds.stop)
    client = CaClient(mtls.ca_socket, mtls.token_file)
    stack.push_async_callback(client.close)
    manager = CertificateManager(
        client,
        mtls.identity,
        sds.publish,
        ttl=mtls.cert_ttl,
        key_type=mtls.key_type,
        status_path=workdir / STATUS_FILE_NAME,
    )
    await manager.start()
    stack.push_async_callback(manager.stop)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m isthmus.agent`; returns the exit code."""
    try:
        options = parse_options(sys.argv[1:] if argv is None else argv)
    except OptionsError as error:
        _log.setup_logging()
        _log.log(logging.ERROR, "invalid_arguments", error=error)
        return 1
    _log.setup_logging(options.log_level)
    return asyncio.run(run_agent(options))
