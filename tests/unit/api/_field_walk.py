"""Machinery of test_field_coverage: walk the models' fields, build documents that set one
field, and find which attribute names the code outside `isthmus.api` reads.

Kept apart from the test so the test file holds the tables and the verdicts, and this file
the mechanics that have no opinion about any field.
"""

from __future__ import annotations

import ast
import functools
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

SOURCE_ROOT = Path(__file__).resolve().parents[3] / "src" / "isthmus"
# What is not translation or runtime behaviour: the models and their checks themselves,
# the CLI (it only prints fields), test harnesses and the demo.
NOT_ENFORCING = frozenset({"api", "cli", "testing", "demo"})
LIST_ITEM = "[]"
MAP_VALUE = "{}"
DICT_KEY = "key"  # the key a `{}` segment gets in a concrete path or a built document


@dataclass(frozen=True)
class Field:
    """One field reachable from a kind: its YAML path, its model and Python name.

    `path` reads `Kind.spec.http[].match[].headers{}.exact`: `[]` is "any item of this
    list", `{}` "the value under any key of this map"."""

    path: str
    model: type[BaseModel]
    attribute: str


def walk(kind: str, model: type[BaseModel]) -> Iterator[Field]:
    """Every field of `model` and of the models nested in it (through optionals,
    unions, lists and maps), depth first, in declaration order."""
    yield from _fields(model, kind, frozenset())


def _fields(model: type[BaseModel], prefix: str, seen: frozenset[type]) -> Iterator[Field]:
    if model in seen:  # a recursive model would never end; none is, keep it so
        raise AssertionError(f"{prefix}: {model.__name__} contains itself")
    for name, info in model.model_fields.items():
        path = f"{prefix}.{info.alias or name}"
        yield Field(path, model, name)
        for nested in _leaf_types(info.annotation):
            yield from _nested(nested, path, seen | {model})


def _nested(annotation: Any, path: str, seen: frozenset[type]) -> Iterator[Field]:
    origin = get_origin(annotation)
    if origin is list:
        for item in _leaf_types(get_args(annotation)[0]):
            yield from _nested(item, path + LIST_ITEM, seen)
    elif origin is dict:
        for value in _leaf_types(get_args(annotation)[1]):
            yield from _nested(value, path + MAP_VALUE, seen)
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield from _fields(annotation, path, seen)


def _leaf_types(annotation: Any) -> list[Any]:
    """`Annotated[X, ...]` is X; `X | Y | None` is X, Y and NoneType."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _leaf_types(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return [leaf for arg in get_args(annotation) for leaf in _leaf_types(arg)]
    return [annotation]


def segments(relative: str) -> list[str]:
    """`spec.http[].retries` -> ["spec", "http[]", "retries"] (names hold no dots)."""
    return relative.split(".")


def concrete(relative: str) -> str:
    """The path as an error names it for a built document: `spec.http[0].retries`."""
    return relative.replace(LIST_ITEM, "[0]").replace(MAP_VALUE, f"[{DICT_KEY}]")


def set_path(document: dict[str, Any], relative: str, value: Any) -> None:
    """Set `relative` (a path without its kind) in `document`, in place: a `[]` segment
    goes into the list's first item (made if missing), a `{}` one under DICT_KEY."""
    node: Any = document
    parts = segments(relative)
    for position, part in enumerate(parts):
        last = position == len(parts) - 1
        name = part.removesuffix(LIST_ITEM).removesuffix(MAP_VALUE)
        if part.endswith(LIST_ITEM):
            items = node.setdefault(name, [])
            if not items:
                items.append({})
            if last:
                items[0] = value
            node = items[0]
        elif part.endswith(MAP_VALUE):
            entries = node.setdefault(name, {})
            if last:
                entries[DICT_KEY] = value
            node = entries.setdefault(DICT_KEY, {})
        elif last:
            node[name] = value
        else:
            node = node.setdefault(name, {})


def deep_copy(document: Mapping[str, Any]) -> dict[str, Any]:
    """A copy the test may change (documents are plain JSON values)."""
    copied: dict[str, Any] = _copy(document)
    return copied


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


@functools.cache
def attributes_read() -> frozenset[str]:
    """Every name used as `something.NAME` in the sources that enforce configuration
    (all of src/isthmus except NOT_ENFORCING). Parsed once per test session."""
    found: set[str] = set()
    for path in sorted(SOURCE_ROOT.rglob("*.py")):
        if path.relative_to(SOURCE_ROOT).parts[0] in NOT_ENFORCING:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        found.update(node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute))
    return frozenset(found)
