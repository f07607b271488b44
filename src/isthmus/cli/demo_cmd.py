"""`isthmus demo`: the seed's canary story over real Envoy (see isthmus.demo.canary)."""

from __future__ import annotations

import click

from isthmus.demo.canary import run_demo


@click.command("demo")
@click.option("--keep", is_flag=True, help="Leave the demo mesh running until Ctrl-C.")
def demo_command(keep: bool) -> None:
    """Run the seed's canary demo: split, beta users, rollback under load."""
    raise SystemExit(run_demo(click.echo, keep=keep))
