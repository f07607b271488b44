"""`isthmus up`, `down`, `restart`, `status` and `node`: the mesh's processes on this machine.

A mesh is two processes, started in the background by `up`: isthmusd (the control plane)
and the node runtime (pods). Either can be restarted without touching a pod: `restart
--control-plane` or `--node` (an upgrade), and `up` starts whichever one is not running
(after a crash). `down` asks the node runtime to stop every pod and remove everything the
mesh made, then stops isthmusd; when the node runtime is gone it does the cleanup itself.
A mesh name belongs to one home: `up` from another home is refused, naming the owner, and
`down` never touches a mesh this home does not own.

`up` also installs Istio's ingress gateway (cli.ingress_gateway) unless told
`--no-ingress-gateway`, and publishes its ports on the host's loopback as `--ingress-port
HOSTPORT:PORT` says (none by default). An `up` of a mesh that is still there (a process
or a pod of it runs) keeps the ingress choices it was started with unless given again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from isthmus.api.published_ports import (
    PublishedPortError,
    check_published_ports,
    parse_published_port,
    parse_published_ports,
)
from isthmus.cli.addons import (
    ADDONS,
    install_prometheus,
    remove_addon_files,
    remove_addon_objects,
)
from isthmus.cli.context import CliContext, notice, pass_cli
from isthmus.cli.errors import UserError
from isthmus.cli.ingress_gateway import install_ingress_gateway, remove_ingress_gateway
from isthmus.cli.mesh_options import mesh_options, read_mesh_config
from isthmus.cli.waiting import timeout_option
from isthmus.daemon.client import DaemonClient, DaemonError, DaemonNotRunning
from isthmus.home import MeshHome
from isthmus.netns import NetworkConfig, NetworkConfigError, ToolsMissing, require_tools
from isthmus.netns.host_netns import release_host_netns
from isthmus.node.control import NodeControl, NodeUnavailable
from isthmus.node.ownership import MeshOwned, check_owner, current_owner
from isthmus.runtime.process import process_alive
from isthmus.runtime.records import PodRecords

PROBE_TIMEOUT = 3.0  # a live process answers its health check at once


@dataclass(frozen=True)
class Settings:
    """How `up` started this home's mesh; `restart` and `down` use the same."""

    mesh: str
    pod_cidr: str
    service_cidr: str
    trust_domain: str = "cluster.local"
    root_namespace: str = "istio-system"
    path_normalization: str = "BASE"
    cacerts: str | None = None  # Istio's plugged-in CA directory
    mesh_config: str | None = None  # Istio's MeshConfig YAML, as the user gave it (checked)
    zipkin_port: int | None = None  # isthmusd also serves the Zipkin API on 127.0.0.1:PORT
    ingress_gateway: bool = True  # `up` installs istio-ingressgateway
    ingress_ports: str = ""  # published on 127.0.0.1: `HOSTPORT:PORT,...`

    def network(self) -> NetworkConfig:
        return NetworkConfig(self.mesh, self.pod_cidr, self.service_cidr)


def read_settings(home: MeshHome) -> Settings | None:
    try:
        data = json.loads(home.settings.read_text())
        return Settings(
            data["mesh"],
            data["podCIDR"],
            data["serviceCIDR"],
            data.get("trustDomain", "cluster.local"),
            data.get("rootNamespace", "istio-system"),
            data.get("pathNormalization", "BASE"),
            data.get("cacerts"),
            data.get("meshConfig"),
            data.get("zipkinPort"),
            bool(data.get("ingressGateway", True)),
            str(data.get("ingressPorts", "")),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_settings(home: MeshHome, settings: Settings) -> None:
    home.settings.write_text(
        json.dumps(
            {
                "mesh": settings.mesh,
                "podCIDR": settings.pod_cidr,
                "serviceCIDR": settings.service_cidr,
                "trustDomain": settings.trust_domain,
                "rootNamespace": settings.root_namespace,
                "pathNormalization": settings.path_normalization,
                "cacerts": settings.cacerts,
                "meshConfig": settings.mesh_config,
                "zipkinPort": settings.zipkin_port,
                "ingressGateway": settings.ingress_gateway,
                "ingressPorts": settings.ingress_ports,
            }
        )
    )


def _pid(path: Path) -> int | None:
    """The pid in a pid file if that process is alive."""
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if process_alive(pid) else None


def daemon_pid(home: MeshHome) -> int | None:
    return _pid(home.root / "isthmusd.pid")


def node_pid(home: MeshHome) -> int | None:
    return _pid(home.root / "node.pid")


def daemon_health(home: MeshHome, timeout: float = PROBE_TIMEOUT) -> dict[str, Any] | None:
    try:
        with DaemonClient(home, timeout=timeout) as client:
            return client.healthz()
    except (DaemonNotRunning, DaemonError):
        return None


def node_status(home: MeshHome, timeout: float = PROBE_TIMEOUT) -> dict[str, Any] | None:
    try:
        return NodeControl(home, timeout=timeout).status()
    except NodeUnavailable:
        return None


def _spawn(home: MeshHome, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
    home.log_dir.mkdir(parents=True, exist_ok=True)
    with (home.log_dir / f"{name}.out").open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", *argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


class _Patience:
    """Says on stderr that the CLI is still waiting (after a few seconds, then every few)."""

    FIRST = 3.0
    EVERY = 5.0

    def __init__(self, what: str, timeout: float) -> None:
        self.what = what
        self.timeout = timeout
        self.started = time.monotonic()
        self.deadline = self.started + timeout
        self._next = self.started + self.FIRST

    def waiting(self) -> bool:
        """False once the timeout ran out; prints a progress line when one is due."""
        now = time.monotonic()
        if now >= self._next:
            notice(
                f"still waiting for {self.what} ({now - self.started:.0f}s, "
                f"timeout {self.timeout:.0f}s)..."
            )
            self._next = now + self.EVERY
        return now < self.deadline


def _await_start(
    home: MeshHome,
    name: str,
    process: subprocess.Popen[bytes],
    ready: Callable[[], bool],
    timeout: float,
) -> None:
    patience = _Patience(f"{name} to start", timeout)
    while patience.waiting():
        if process.poll() is not None:
            text = (home.log_dir / f"{name}.out").read_text(errors="replace")
            errors = [line for line in text.splitlines() if line.startswith("error: ")]
            if errors:
                raise UserError(errors[-1].removeprefix("error: "))
            raise UserError(
                f"{name} exited with code {process.returncode}", *text.strip().splitlines()[-3:]
            )
        if ready():
            return
        time.sleep(0.1)
    raise UserError(
        f"{name} did not answer within {timeout:.0f}s (it may still come up: check with "
        f"`isthmus status`); see {home.log_dir}/{name}.out"
    )


def _mesh_config_args(home: MeshHome, settings: Settings) -> list[str]:
    """The MeshConfig `up` was given, kept in the home so a restart reads the same."""
    if settings.mesh_config is None:
        return []
    path = home.root / "mesh-config.yaml"
    path.write_text(settings.mesh_config, encoding="utf-8")
    return ["--mesh-config", str(path)]


def start_daemon(home: MeshHome, settings: Settings, timeout: float) -> int:
    process = _spawn(
        home,
        "isthmusd",
        [
            "isthmus.daemon",
            *("--home", str(home.root), "--service-cidr", settings.service_cidr),
            *("--trust-domain", settings.trust_domain, "--root-namespace", settings.root_namespace),
            *("--path-normalization", settings.path_normalization),
            *(("--cacerts", settings.cacerts) if settings.cacerts else ()),
            *(("--zipkin-port", str(settings.zipkin_port)) if settings.zipkin_port else ()),
            *_mesh_config_args(home, settings),
        ],
    )
    _await_start(home, "isthmusd", process, lambda: daemon_health(home) is not None, timeout)
    return process.pid


def start_node(home: MeshHome, settings: Settings, timeout: float) -> int:
    process = _spawn(
        home,
        "node",
        [
            "isthmus.node",
            "--home",
            str(home.root),
            "--mesh",
            settings.mesh,
            "--pod-cidr",
            settings.pod_cidr,
            "--service-cidr",
            settings.service_cidr,
            "--trust-domain",
            settings.trust_domain,
            "--root-namespace",
            settings.root_namespace,
        ],
    )
    _await_start(home, "node", process, lambda: node_status(home) is not None, timeout)
    return process.pid


def _wait_exit(pid: int, timeout: float, what: str) -> bool:
    """True once `pid` is gone; SIGKILL and False if it is still there after `timeout`."""
    patience = _Patience(what, timeout)
    while patience.waiting():
        if not process_alive(pid):
            return True
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    return False


def stop_daemon(home: MeshHome, timeout: float = 30.0) -> None:
    pid = daemon_pid(home)
    if daemon_health(home) is not None:
        with (
            contextlib.suppress(DaemonError, DaemonNotRunning),
            DaemonClient(home, timeout=PROBE_TIMEOUT) as client,
        ):
            client.request("POST", "/v1/shutdown")
    elif pid is not None:  # alive but not answering (stalled): it will not shut down cleanly
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            os.kill(pid, signal.SIGCONT)
    if pid is not None:
        _wait_exit(pid, timeout, "isthmusd to stop")
    for leftover in ("isthmusd.sock", "xds.sock", "zipkin.sock", "isthmusd.pid"):
        (home.root / leftover).unlink(missing_ok=True)


def stop_node(home: MeshHome, teardown: bool, timeout: float) -> bool:
    """Ask the node runtime to stop (and with teardown, to stop every pod); True if it did.

    After `timeout` it is killed (pods are then stopped without it: `down`)."""
    pid = node_pid(home)
    asked = False
    with contextlib.suppress(NodeUnavailable):
        NodeControl(home, timeout=PROBE_TIMEOUT).shutdown(teardown)
        asked = True
    what = "the node runtime to stop every pod" if teardown else "the node runtime to stop"
    clean = asked and pid is not None and _wait_exit(pid, timeout, what)
    if not asked and pid is not None:  # stalled or wedged: pods are handled without it
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _wait_exit(pid, 5.0, "the node runtime to be killed")
    for leftover in ("node.sock", "node.pid"):
        (home.root / leftover).unlink(missing_ok=True)
    return clean


def _check_tools(settings: Settings, home: MeshHome) -> None:
    try:
        require_tools()
        settings.network()
        home.check_socket_path()
    except (ToolsMissing, NetworkConfigError, ValueError) as exc:
        raise UserError(str(exc)) from None


def _ingress_ports(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[str, ...]:
    try:
        ports = check_published_ports(parse_published_port(value) for value in values)
    except PublishedPortError as error:
        raise click.BadParameter(str(error)) from None
    return tuple(str(port) for port in ports)


def _mesh_present(home: MeshHome) -> bool:
    """Whether this home's mesh is still there: a process of it runs, or a pod record
    says a pod may (the processes were killed, their shims keep the pods)."""
    return bool(daemon_pid(home) or node_pid(home) or PodRecords(home.node_state / "pods").exist())


def _ingress_settings(
    home: MeshHome, gateway: bool | None, ports: tuple[str, ...]
) -> tuple[bool, str]:
    """The ingress choices of this `up`: as given; what was not given is what the mesh
    that is still there was started with, else the defaults (a gateway, nothing
    published)."""
    running = read_settings(home) if _mesh_present(home) else None
    if gateway is None:
        gateway = running.ingress_gateway if running is not None else True
    if not ports and running is not None and gateway:
        return gateway, running.ingress_ports
    if ports and not gateway:
        raise UserError(
            "--ingress-port publishes the ingress gateway's ports: not with --no-ingress-gateway"
        )
    return gateway, ",".join(ports)


@click.command("up")
@timeout_option
@click.option(
    "--mesh",
    default="isthmus",
    show_default=True,
    help="Mesh name (prefix of everything it makes).",
)
@click.option("--pod-cidr", default="10.44.0.0/16", show_default=True)
@click.option("--service-cidr", default="10.96.0.0/16", show_default=True)
@mesh_options
@click.option(
    "--with",
    "addons",
    multiple=True,
    type=click.Choice(ADDONS),
    help="Also run an addon as a pod in the root namespace (prometheus: scrapes every pod).",
)
@click.option(
    "--zipkin-port",
    type=click.IntRange(1, 65535),
    help="isthmusd also serves the Zipkin API on 127.0.0.1:PORT (for a Zipkin UI).",
)
@click.option(
    "--ingress-gateway/--no-ingress-gateway",
    "ingress_gateway",
    default=None,
    help="Install Istio's ingress gateway (istio-system/istio-ingressgateway) [default: yes].",
)
@click.option(
    "--ingress-port",
    "ingress_ports",
    multiple=True,
    metavar="HOSTPORT:PORT",
    callback=_ingress_ports,
    help="Publish the ingress gateway's PORT on the host at 127.0.0.1:HOSTPORT (loopback "
    "only), e.g. 8080:80; repeatable. Default: none.",
)
@pass_cli
def up_command(
    cli: CliContext,
    mesh: str,
    pod_cidr: str,
    service_cidr: str,
    trust_domain: str,
    root_namespace: str,
    path_normalization: str,
    mesh_config: str | None,
    cacerts: str | None,
    addons: tuple[str, ...],
    zipkin_port: int | None,
    ingress_gateway: bool | None,
    ingress_ports: tuple[str, ...],
) -> None:
    """Start isthmusd and the node runtime in the background (whichever is not running)."""
    home = cli.home
    mesh_config_text, _ = read_mesh_config(mesh_config)
    gateway, published = _ingress_settings(home, ingress_gateway, ingress_ports)
    wanted = Settings(
        mesh,
        pod_cidr,
        service_cidr,
        trust_domain,
        root_namespace,
        path_normalization,
        cacerts,
        mesh_config_text,
        zipkin_port,
        gateway,
        published,
    )
    _check_tools(wanted, home)
    running = read_settings(home)
    if running is not None and running != wanted and (daemon_pid(home) or node_pid(home)):
        raise UserError(
            f"home {home.root} runs mesh {running.mesh} ({running.pod_cidr}, "
            f"{running.service_cidr}); run `isthmus down` first to start another"
        )
    try:
        check_owner(mesh, home.root)
    except MeshOwned as exc:
        raise UserError(str(exc)) from None
    for name, pid, answers in (
        ("isthmusd", daemon_pid(home), daemon_health(home) is not None),
        ("the node runtime", node_pid(home), node_status(home) is not None),
    ):
        if pid is not None and not answers:
            raise UserError(
                f"{name} (pid {pid}) is running but does not answer; wait for it, or restart "
                "it with `isthmus restart`"
            )
    home.root.mkdir(parents=True, exist_ok=True)
    _write_settings(home, wanted)
    started = []
    daemon_started = False
    if daemon_health(home) is None:
        start_daemon(home, wanted, cli.timeout)
        started.append("isthmusd")
        daemon_started = True
    if node_status(home) is None:
        try:
            start_node(home, wanted, cli.timeout)
        except UserError:
            if daemon_started:
                stop_daemon(home)
            raise
        started.append("node runtime")
    reach = {}
    if gateway:
        with cli.client() as client:
            reach["ingress"] = install_ingress_gateway(client, parse_published_ports(published))
    if "prometheus" in addons:
        with cli.client() as client:
            reach["prometheus"] = install_prometheus(client, home, root_namespace)
    if not started:
        click.echo(f"isthmus is already up (mesh {mesh}, home {home.root})")
        for addon, line in reach.items():
            click.echo(f"  {addon:<10} {line}")
        return
    node = node_status(home) or {}
    click.echo(f"isthmus is up (mesh {mesh}, home {home.root}; started {', '.join(started)})")
    click.echo(f"  API        {home.socket}")
    click.echo(f"  xDS        {home.root / 'xds.sock'}")
    click.echo(f"  logs       {home.log_dir}")
    click.echo(f"  pods       {pod_cidr}   services {service_cidr}   running {node.get('pods', 0)}")
    for addon, line in reach.items():
        click.echo(f"  {addon:<10} {line}")


@click.command("down")
@timeout_option(default=180.0)  # every pod stops gracefully: grace periods and drains
@pass_cli
def down_command(cli: CliContext) -> None:
    """Stop every pod and both processes; remove everything the mesh made."""
    home = cli.home
    settings = read_settings(home)
    if settings is not None:
        owner = current_owner(settings.mesh)
        if owner is not None and Path(owner.home) != home.root:
            click.echo(
                f"mesh {settings.mesh} belongs to home {owner.home}: leaving its pods and "
                "network alone",
                err=True,
            )
        elif not stop_node(home, teardown=True, timeout=cli.timeout):
            # The node runtime is gone (or wedged): stop its pods' shims and clean up here.
            with contextlib.suppress(ToolsMissing):
                require_tools()
                from isthmus.node.cleanup import force_down

                asyncio.run(force_down(home, settings.network()))
    else:
        stop_node(home, teardown=True, timeout=cli.timeout)
    if daemon_health(home) is not None:  # so that the next `up` does not start them again
        remove_addon_objects(home, settings.root_namespace if settings else "istio-system", 10.0)
        remove_ingress_gateway(home, 10.0)
    stop_daemon(home)
    remove_addon_files(home)
    try:  # the node runtime released it, unless it was gone; this home's own file either way
        release_host_netns(home.host_netns)
    except OSError as error:
        click.echo(f"isthmus: {home.host_netns} is still mounted: {error}", err=True)
    click.echo(f"isthmus is down (home {home.root})")


@click.command("restart")
@click.option("--control-plane", "control_plane", is_flag=True, help="Restart isthmusd only.")
@click.option("--node", is_flag=True, help="Restart the node runtime only.")
@timeout_option
@pass_cli
def restart_command(cli: CliContext, control_plane: bool, node: bool) -> None:
    """Restart isthmusd and/or the node runtime (an upgrade); pods keep running."""
    home = cli.home
    settings = read_settings(home)
    if settings is None:
        raise UserError(f"no mesh was started from home {home.root} (use `isthmus up`)")
    _check_tools(settings, home)
    both = not control_plane and not node
    if control_plane or both:
        began = time.monotonic()
        stop_daemon(home)
        pid = start_daemon(home, settings, cli.timeout)
        click.echo(f"isthmusd restarted (pid {pid}, {time.monotonic() - began:.1f}s)")
    if node or both:
        began = time.monotonic()
        stop_node(home, teardown=False, timeout=cli.timeout)
        pid = start_node(home, settings, cli.timeout)
        adopted = (node_status(home) or {}).get("pods", 0)
        click.echo(
            f"node runtime restarted (pid {pid}, {time.monotonic() - began:.1f}s, "
            f"{adopted} pods adopted)"
        )


@click.command("status")
@timeout_option(default=PROBE_TIMEOUT)
@pass_cli
def status_command(cli: CliContext) -> None:
    """Say what runs: isthmusd, the node runtime and its pods, the connected proxies."""
    home = cli.home
    health = daemon_health(home, cli.timeout)
    node = node_status(home, cli.timeout)
    if health is None:
        pid = daemon_pid(home)
        state = f"not answering (pid {pid})" if pid else "not running"
        click.echo(f"isthmusd: {state} (home {home.root})")
    else:
        click.echo(
            f"isthmusd: running, pid {daemon_pid(home)}, revision {health.get('revision')}, "
            f"home {home.root}"
        )
    if node is None:
        pid = node_pid(home)
        click.echo(f"node runtime: {f'not answering (pid {pid})' if pid else 'not running'}")
    else:
        link = "connected" if node.get("watching") else "waiting for isthmusd"
        click.echo(
            f"node runtime: running, pid {node.get('pid')}, mesh {node.get('mesh')}, "
            f"{node.get('pods')} pods ({node.get('ready')} ready), {link}"
        )
    if health is not None:
        with cli.client() as client:
            proxies = client.request("GET", "/v1/proxies")["proxies"]
        synced = sum(1 for p in proxies if p.get("synced"))
        click.echo(f"proxies: {len(proxies)} connected, {synced} synced")
    if health is None and node is None:
        raise SystemExit(1)


@click.command("node")
@click.option("--mesh", default="isthmus", show_default=True)
@click.option("--pod-cidr", default="10.44.0.0/16", show_default=True)
@click.option("--service-cidr", default="10.96.0.0/16", show_default=True)
@click.option("--trust-domain", default="cluster.local", show_default=True)
@click.option("--root-namespace", default="istio-system", show_default=True)
@click.option(
    "--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"])
)
@pass_cli
def node_command(
    cli: CliContext,
    mesh: str,
    pod_cidr: str,
    service_cidr: str,
    trust_domain: str,
    root_namespace: str,
    log_level: str,
) -> None:
    """Run the node runtime (pods) in the foreground; `isthmus up` starts it for you."""
    from isthmus.node.__main__ import main as node_main

    _check_tools(Settings(mesh, pod_cidr, service_cidr), cli.home)
    code = node_main(
        [
            "--home",
            str(cli.home.root),
            "--mesh",
            mesh,
            "--pod-cidr",
            pod_cidr,
            "--service-cidr",
            service_cidr,
            "--trust-domain",
            trust_domain,
            "--root-namespace",
            root_namespace,
            "--log-level",
            log_level,
        ]
    )
    raise SystemExit(code)
