"""The mesh-wide settings `isthmus up` and `isthmus daemon` share (MeshConfig's trust
domain, root namespace and path normalization, and Istio's plugged-in CA)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from isthmus.api.mesh_config import MeshConfigError, MeshConfigFile, parse_mesh_config
from isthmus.cli.errors import UserError

F = TypeVar("F", bound=Callable[..., Any])
PATH_NORMALIZATIONS = ("NONE", "BASE", "MERGE_SLASHES", "DECODE_AND_MERGE_SLASHES")


def mesh_options(command: F) -> F:
    """--trust-domain, --root-namespace, --path-normalization, --mesh-config and --cacerts."""
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
                "--mesh-config",
                type=click.Path(exists=True, dir_okay=False, resolve_path=True),
                help="Istio's MeshConfig YAML: accessLogFile, accessLogEncoding, "
                "accessLogFormat, enableTracing, defaultConfig.tracing (sampling, zipkin).",
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


def read_mesh_config(path: str | None) -> tuple[str | None, MeshConfigFile | None]:
    """The file's text and its MeshConfig, or one UserError line per problem."""
    if path is None:
        return None, None
    try:
        text = Path(path).read_text(encoding="utf-8", errors="strict")
        return text, parse_mesh_config(text, path)
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: {error}") from None
    except MeshConfigError as error:
        raise UserError(*str(error).splitlines()) from None
