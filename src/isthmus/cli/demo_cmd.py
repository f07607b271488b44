"""`isthmus demo`: the seed's story end to end (isthmus.demo.tour), or, without root, its
canary over real Envoy on loopback (isthmus.demo.canary, control plane only)."""

from __future__ import annotations

import json
import os

import click

from isthmus.cli.context import CliContext, pass_cli
from isthmus.cli.errors import UserError
from isthmus.cli.lifecycle import down_command
from isthmus.demo.driver import DemoError, MeshDriver
from isthmus.netns import ToolsMissing, require_tools


def _full_tour_blocker() -> str | None:
    """Why the full tour can not run here, or None."""
    if os.geteuid() != 0:
        return "the full tour needs root (network namespaces, veth pairs, iptables)"
    try:
        require_tools()
    except ToolsMissing as exc:
        return f"the full tour needs {exc}"
    return None


@click.command("demo")
@click.option("--mesh", default="isthmus", show_default=True, help="Mesh name for `up`.")
@click.option("--quick", is_flag=True, help="Less traffic and shorter storms (tests, CI).")
@click.option("--json", "as_json", is_flag=True, help="Narrate on stderr; summary JSON on stdout.")
@click.option("--control-plane", is_flag=True, help="Run the loopback canary demo (no root).")
@click.option("--keep", is_flag=True, help="With --control-plane: keep it running until Ctrl-C.")
@click.option("--down", is_flag=True, help="Remove the demo's mesh (same as `isthmus down`).")
@click.pass_context
@pass_cli
def demo_command(
    cli: CliContext,
    ctx: click.Context,
    mesh: str,
    quick: bool,
    as_json: bool,
    control_plane: bool,
    keep: bool,
    down: bool,
) -> None:
    """Tell the seed's story: canary split, beta users, a slow pod's cascade without mesh
    policies and contained with them, rollback by weight. Leaves the mesh up to explore."""
    if down:
        ctx.invoke(down_command)
        return

    def say(line: str) -> None:
        click.echo(line, err=as_json)

    blocker = None if control_plane else _full_tour_blocker()
    if control_plane or blocker:
        from isthmus.demo.canary import run_demo

        if blocker:
            say(f"• {blocker}; running the control-plane demo instead (real Envoy on loopback)")
        raise SystemExit(run_demo(say, keep=keep))

    from isthmus.demo.tour import PROFILES, Tour

    tour = Tour(MeshDriver(cli.home), PROFILES["quick" if quick else "full"], say)
    try:
        summary = tour.run(mesh)
    except DemoError as exc:
        raise UserError(
            str(exc),
            f"the mesh is left as it is; `isthmus --home {cli.home.root} demo --down` removes it",
        ) from None
    if as_json:
        click.echo(json.dumps(summary))
