"""`isthmus up`, `down` and `status`: the mesh's lifecycle on this machine.

`up` starts isthmusd with the local runtime in the background (its output goes to
$ISTHMUS_HOME/logs/isthmusd.out) and waits until it answers. `down` asks it to stop every
pod and remove every namespace, link and rule it made, waits for it to exit, and cleans up
itself if the daemon is gone (after a crash).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click

from isthmus.cli.context import CliContext, pass_cli
from isthmus.cli.errors import UserError
from isthmus.daemon.client import DaemonError, DaemonNotRunning
from isthmus.daemon.runtime_wiring import proxy_dir
from isthmus.netns import (
    MeshNetwork,
    NetworkConfig,
    NetworkConfigError,
    ToolsMissing,
    require_tools,
)

START_TIMEOUT = 60.0
STOP_TIMEOUT = 120.0


def _settings_path(cli: CliContext) -> Path:
    return cli.home.root / "mesh.json"


def _pid(cli: CliContext) -> int | None:
    try:
        pid = int((cli.home.root / "isthmusd.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def _healthz(cli: CliContext) -> dict[str, Any] | None:
    try:
        with cli.client() as client:
            return client.healthz()
    except (DaemonNotRunning, DaemonError):
        return None


@click.command("up")
@click.option(
    "--mesh",
    default="isthmus",
    show_default=True,
    help="Mesh name (prefix of everything it makes).",
)
@click.option("--pod-cidr", default="10.44.0.0/16", show_default=True)
@click.option("--service-cidr", default="10.96.0.0/16", show_default=True)
@pass_cli
def up_command(cli: CliContext, mesh: str, pod_cidr: str, service_cidr: str) -> None:
    """Start isthmusd with the local runtime in the background."""
    try:
        require_tools()
        NetworkConfig(mesh, pod_cidr, service_cidr)
        cli.home.check_socket_path()
    except (ToolsMissing, NetworkConfigError, ValueError) as exc:
        raise UserError(str(exc)) from None
    if _healthz(cli) is not None:
        click.echo(f"isthmus is already up (home {cli.home.root})")
        return
    stale = _pid(cli)
    if stale is not None:  # alive but not answering: a wedged daemon of this home
        with contextlib.suppress(ProcessLookupError):
            os.kill(stale, signal.SIGKILL)
    cli.home.log_dir.mkdir(parents=True, exist_ok=True)
    _settings_path(cli).write_text(
        json.dumps({"mesh": mesh, "podCIDR": pod_cidr, "serviceCIDR": service_cidr})
    )
    out = (cli.home.log_dir / "isthmusd.out").open("ab")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "isthmus.daemon",
            "--home",
            str(cli.home.root),
            "--runtime",
            "--mesh",
            mesh,
            "--pod-cidr",
            pod_cidr,
            "--service-cidr",
            service_cidr,
        ],
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    out.close()
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = (
                (cli.home.log_dir / "isthmusd.out")
                .read_text(errors="replace")
                .strip()
                .splitlines()[-3:]
            )
            raise UserError(f"isthmusd exited with code {process.returncode}", *tail)
        if _healthz(cli) is not None:
            click.echo(f"isthmus is up (mesh {mesh}, home {cli.home.root})")
            click.echo(f"  API        {cli.home.socket}")
            click.echo(f"  xDS        {cli.home.root / 'xds.sock'}")
            click.echo(f"  logs       {cli.home.log_dir}")
            click.echo(f"  pods       {pod_cidr}   services {service_cidr}")
            return
        time.sleep(0.1)
    raise UserError(
        f"isthmusd did not answer within {START_TIMEOUT:.0f}s; see {cli.home.log_dir}/isthmusd.out"
    )


@click.command("down")
@pass_cli
def down_command(cli: CliContext) -> None:
    """Stop every pod and the daemon; remove everything the mesh made."""
    pid = _pid(cli)
    if _healthz(cli) is not None:
        with contextlib.suppress(DaemonError, DaemonNotRunning), cli.client() as client:
            client.request("POST", "/v1/shutdown")
    if pid is not None:
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline and _pid(cli) == pid:
            time.sleep(0.1)
        if _pid(cli) == pid:
            os.kill(pid, signal.SIGKILL)
    # Whatever a crashed daemon left: namespaces, links, rules, processes, sockets.
    settings = _read_settings(cli)
    if settings is not None:
        with contextlib.suppress(ToolsMissing):
            require_tools()
            config = NetworkConfig(settings["mesh"], settings["podCIDR"], settings["serviceCIDR"])
            asyncio.run(MeshNetwork(config).teardown())
            shutil.rmtree(proxy_dir(settings["mesh"]), ignore_errors=True)
    for leftover in ("isthmusd.sock", "xds.sock", "isthmusd.pid"):
        (cli.home.root / leftover).unlink(missing_ok=True)
    click.echo(f"isthmus is down (home {cli.home.root})")


def _read_settings(cli: CliContext) -> dict[str, str] | None:
    try:
        data = json.loads(_settings_path(cli).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@click.command("status")
@pass_cli
def status_command(cli: CliContext) -> None:
    """Say what runs: the daemon, the runtime's pods, the connected proxies."""
    health = _healthz(cli)
    if health is None:
        click.echo(f"isthmusd: not running (home {cli.home.root})")
        raise SystemExit(1)
    with cli.client() as client:
        pods = client.request("GET", "/v1/pods")
        proxies = client.request("GET", "/v1/proxies")["proxies"]
    click.echo(
        f"isthmusd: running, pid {_pid(cli)}, revision {health.get('revision')}, "
        f"home {cli.home.root}"
    )
    if pods.get("runtime"):
        items = pods["pods"]
        ready = sum(1 for p in items if p["ready"])
        click.echo(f"runtime: {len(items)} pods, {ready} ready")
    else:
        click.echo("runtime: off (control plane only)")
    synced = sum(1 for p in proxies if p.get("synced"))
    click.echo(f"proxies: {len(proxies)} connected, {synced} synced")
