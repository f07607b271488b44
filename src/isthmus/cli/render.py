"""Printing objects for `isthmus get`: a kubectl-like table, YAML, or JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import yaml

from isthmus.cli.columns import age, columns_for

Body = dict[str, Any]


def table(kind: str, bodies: Sequence[Body], with_namespace: bool, wide: bool) -> str:
    """Columns separated by three spaces, headers in capitals, as kubectl prints them."""
    columns = columns_for(kind, wide)
    header = ["NAMESPACE"] if with_namespace else []
    header += ["NAME", *(title for title, _ in columns), "AGE"]
    rows = [header]
    for body in bodies:
        meta = body.get("metadata", {})
        row = [str(meta.get("namespace", ""))] if with_namespace else []
        row += [str(meta.get("name", "")), *(cell(body) for _, cell in columns), age(body)]
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    return "\n".join(lines)


def as_document(bodies: Sequence[Body], single: bool) -> Body:
    """One object as itself; several as a kubectl `List` (so the output re-applies)."""
    if single and len(bodies) == 1:
        return bodies[0]
    return {"apiVersion": "v1", "kind": "List", "items": list(bodies)}


def to_yaml(document: Body) -> str:
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False).rstrip("\n")


def to_json(document: Body) -> str:
    return json.dumps(document, indent=4)
