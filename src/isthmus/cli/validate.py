"""`isthmus validate -f ...`: check manifests with apply's checks, with no isthmusd and no
mesh home (a CI pipeline): one line per object, or one line per problem and exit 1.

What it cannot say without a mesh is how each object compares with the stored one
(created, configured, unchanged): see `isthmus.cli.offline`.
"""

from __future__ import annotations

import click

from isthmus.cli.apply import report
from isthmus.cli.context import CliContext, pass_cli
from isthmus.cli.errors import UserError
from isthmus.cli.offline import check_offline
from isthmus.cli.sources import read_documents


@click.command("validate")
@click.option(
    "-f",
    "--filename",
    "filenames",
    multiple=True,
    required=True,
    help="Manifest file, directory of *.yaml/*.yml/*.json, or - for stdin. Repeatable.",
)
@click.option("-n", "--namespace", help="Namespace for objects that do not name one.")
@pass_cli
def validate_command(cli: CliContext, filenames: tuple[str, ...], namespace: str | None) -> None:
    """Validate manifests offline, as apply would (no isthmusd needed); exit 1 if invalid."""
    documents = read_documents(filenames)
    if not any(d.text.strip() for d in documents):
        raise UserError("no objects passed to validate")
    results, warnings = check_offline(documents, namespace, cli.home, "validate")
    report(results, warnings, dry_run=False)
