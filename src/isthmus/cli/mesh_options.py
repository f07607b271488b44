"""The mesh-wide settings `isthmus up` and `isthmus daemon` share (MeshConfig's trust
domain, root namespace and path normalization, and Istio's plugged-in CA)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])
PATH_NORMALIZATIONS = ("NONE", "BASE", "MERGE_SLASHES", "DECODE_AND_MERGE_SLASHES")


def mesh_options(command: F) -> F:
    """--trust-domain, --root-namespace, --path-normalization and --cacerts."""
    for option in reversed(
        (
            click.option(
                "--trust-domain",
                default="cluster.local",
                show_default=True,
                help="SPIFFE trust domain of the mesh's identities.",
            ),
            click.option(
                "--root-namespace",
                default="istio-system",
                show_default=True,
                help="Policies here apply mesh-wide (MeshConfig rootNamespace).",
            ),
            click.option(
                "--path-normalization",
                type=click.Choice(PATH_NORMALIZATIONS),
                default="BASE",
                show_default=True,
                help="How request paths are normalized before authorization (MeshConfig).",
            ),
            click.option(
                "--cacerts",
                type=click.Path(exists=True, file_okay=False, resolve_path=True),
                help="Istio's plugged-in CA: ca-cert.pem, ca-key.pem, root-cert.pem, "
                "cert-chain.pem.",
            ),
        )
    ):
        command = option(command)
    return command
