"""`isthmus daemon`: run isthmusd in the foreground on the selected mesh home."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from isthmus.ca import CaError
from isthmus.cli.context import CliContext, pass_cli
from isthmus.cli.errors import UserError
from isthmus.cli.mesh_options import mesh_options, read_mesh_config
from isthmus.daemon.main import DaemonOptions, run_daemon
from isthmus.daemon.zipkin import ZipkinPortUnavailable
from isthmus.logfmt import setup_logging


@click.command("daemon")
@click.option(
    "--debounce", type=float, default=0.1, show_default=True, help="Push quiet window (s)."
)
@click.option(
    "--debounce-max", type=float, default=10.0, show_default=True, help="Longest push delay (s)."
)
@click.option("--xds-tcp", metavar="127.0.0.1:PORT", help="Also serve ADS over TCP on loopback.")
@click.option(
    "--proxy-http-port", type=int, help="Mesh-wide explicit HTTP proxy port (proxyHttpPort)."
)
@click.option("--service-cidr", help="Virtual IPs for Services without a clusterIP.")
@click.option(
    "--zipkin-port",
    type=click.IntRange(1, 65535),
    help="Also serve the Zipkin API (collector and queries) on 127.0.0.1:PORT, e.g. for a "
    "Zipkin UI.",
)
@mesh_options
@click.option(
    "--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"])
)
@pass_cli
def daemon_command(
    cli: CliContext,
    debounce: float,
    debounce_max: float,
    xds_tcp: str | None,
    proxy_http_port: int | None,
    service_cidr: str | None,
    zipkin_port: int | None,
    trust_domain: str,
    root_namespace: str,
    path_normalization: str,
    mesh_config: str | None,
    cacerts: str | None,
    log_level: str,
) -> None:
    """Run isthmusd (store, xDS server, HTTP API) in the foreground."""
    if xds_tcp is not None and not xds_tcp.startswith("127.0.0.1:"):
        raise UserError("--xds-tcp must be 127.0.0.1:PORT (isthmus serves only loopback)")
    try:
        cli.home.check_socket_path()
    except ValueError as exc:
        raise UserError(str(exc)) from None
    _, mesh_config_file = read_mesh_config(mesh_config)
    setup_logging(log_level, cli.home.log_dir / "isthmusd.log")
    options = DaemonOptions(
        debounce_after=debounce,
        debounce_max=debounce_max,
        xds_tcp=xds_tcp,
        proxy_http_port=proxy_http_port,
        service_cidr=service_cidr,
        trust_domain=trust_domain,
        root_namespace=root_namespace,
        path_normalization=path_normalization,
        cacerts=Path(cacerts) if cacerts else None,
        zipkin_port=zipkin_port,
        mesh_config=mesh_config_file,
    )
    try:
        asyncio.run(run_daemon(cli.home, options))
    except CaError as exc:
        raise UserError(f"the mesh CA is unusable: {exc}") from None
    except ZipkinPortUnavailable as exc:
        raise UserError(f"--zipkin-port: {exc}") from None
