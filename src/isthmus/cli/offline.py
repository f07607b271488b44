"""Checking manifests with no isthmusd: `isthmus validate`, and `apply --dry-run` when
isthmusd does not answer.

The checks are apply's own: `load_sources` (every document parsed and validated, the
last copy of an object defined twice wins) and the warnings isthmusd gives on apply,
under the path normalization of this home's mesh (`isthmus up --path-normalization`),
else the default. isthmusd's dry run refuses nothing more (the API has no cross-object
check plugged in); what only it can say is how each object compares with the stored
one: created, configured or unchanged. Offline each object is reported `valid`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from isthmus.api.errors import ApiError
from isthmus.api.loader import final_objects, load_sources
from isthmus.cli.errors import ManifestRefused, UserError
from isthmus.cli.lifecycle import read_settings
from isthmus.daemon.apply_warnings import DEFAULT_PATH_NORMALIZATION, apply_warnings
from isthmus.daemon.client import Document
from isthmus.home import MeshHome

__all__ = ["DEFAULT_NAMESPACE", "VALID", "check_offline"]

DEFAULT_NAMESPACE = "default"  # isthmusd's, for objects that name none
VALID = "valid"


def check_offline(
    documents: Sequence[Document], namespace: str | None, home: MeshHome, verb: str
) -> tuple[list[dict[str, Any]], list[str]]:
    """Apply's checks without isthmusd: (one result per object, as isthmusd answers an
    apply, with result "valid"; warnings). ManifestRefused lists every problem."""
    sources = ((d.source, d.text) for d in documents)
    try:
        objects = final_objects(load_sources(sources, namespace or DEFAULT_NAMESPACE))
    except ApiError as exc:
        raise ManifestRefused(exc.errors) from exc
    if not objects:
        raise UserError(f"no objects passed to {verb}")
    results = []
    for obj in objects:
        kind, object_namespace, name = obj.last.key
        result: dict[str, Any] = {
            "apiVersion": str(obj.last.body.get("apiVersion", "")),
            "kind": kind,
            "namespace": object_namespace,
            "name": name,
            "result": VALID,
        }
        if obj.superseded:
            result["copies"] = len(obj.copies)
            result["appliedFrom"] = obj.last.place
        results.append(result)
    warnings = apply_warnings([o.last for o in objects], _path_normalization(home))
    return results, warnings


def _path_normalization(home: MeshHome) -> str:
    """The mesh's pathNormalization as `isthmus up` recorded it in the home, else the
    default (a fresh machine or a CI pipeline has no home at all)."""
    settings = read_settings(home)
    return settings.path_normalization if settings is not None else DEFAULT_PATH_NORMALIZATION
