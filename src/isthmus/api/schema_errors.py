"""Turn pydantic's structural errors into plain one-line field problems.

pydantic reports a location tuple and a generic message ("Input should be a valid
integer"). We walk the location through the model's annotations to tell fields from
map keys (`spec.http[0].match[0].headers[x-user].exact`), name the model that refused an
unknown field (to say "not supported yet" for Istio fields we do not model, or suggest
the right spelling), and phrase messages the way a YAML author thinks.
"""

from __future__ import annotations

import difflib
import functools
import re
import types
import typing
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from isthmus.api.base import IstioModel, json_name
from isthmus.api.errors import ROOT, FieldPath, FieldProblem, one_line, short_repr

_QUOTED = re.compile(r"'([^']*)'")

_TYPE_MESSAGES = {
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "list_type": "must be a list",
}


def validation_problems(model: type[BaseModel], error: ValidationError) -> list[FieldProblem]:
    """One FieldProblem per pydantic error, in pydantic's order."""
    problems: list[FieldProblem] = []
    for detail in error.errors(include_url=False):
        path, container = _walk(model, detail["loc"])
        problems.append(FieldProblem(str(path), _message(detail, container)))
    return problems


def _walk(model: type[BaseModel], loc: tuple[int | str, ...]) -> tuple[FieldPath, Any]:
    """The user's path for `loc`, and the model class holding its last segment."""
    path = ROOT
    current: Any = model
    container: Any = None
    for segment in loc:
        current = _unwrap(current)
        if isinstance(segment, int):
            path = path.index(segment)
            current = _item_type(current)
        elif _is_model(current):
            container = current
            path = path.field(segment)
            current = _field_annotation(current, segment)
        elif get_origin(current) is dict:
            path = path.key(segment)
            current = _item_type(current)
        else:
            path = path.field(segment)
            current = None
    return path, container


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated[...] and `| None` until a list, dict, model or leaf type remains."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def _item_type(annotation: Any) -> Any:
    args = get_args(annotation)
    return args[-1] if args else None


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _field_annotation(model: type[BaseModel], alias: str) -> Any:
    return _annotations_by_alias(model).get(alias)


@functools.cache
def _annotations_by_alias(model: type[BaseModel]) -> dict[str, Any]:
    hints = typing.get_type_hints(model, include_extras=True)
    return {
        field.alias or name: hints.get(name, field.annotation)
        for name, field in model.model_fields.items()
    }


def _aliases(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


def _message(detail: ErrorDetails, container: Any) -> str:
    kind = detail["type"]
    value = detail["input"]
    ctx = detail.get("ctx", {})
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return _unknown_field(str(detail["loc"][-1]), container)
    if kind in _TYPE_MESSAGES:
        return f"{_TYPE_MESSAGES[kind]} (got {_describe(value)})"
    if kind in ("enum", "literal_error"):
        choices = _QUOTED.findall(str(ctx.get("expected", "")))
        return f"must be one of {', '.join(choices)} (got {_describe(value)})"
    if kind in ("greater_than_equal", "greater_than"):
        return f"must be at least {ctx.get('ge', ctx.get('gt'))} (got {_describe(value)})"
    if kind in ("less_than_equal", "less_than"):
        return f"must be at most {ctx.get('le', ctx.get('lt'))} (got {_describe(value)})"
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return one_line(str(ctx["error"]))
    return one_line(detail["msg"])


def _describe(value: object) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return short_repr(value)


def _unknown_field(name: str, container: Any) -> str:
    if not _is_model(container):
        return "unknown field"
    if issubclass(container, IstioModel) and name in container.not_supported_fields:
        return "not supported yet"
    if issubclass(container, IstioModel) and name in container.removed_fields:
        return f"Istio removed this field: {container.removed_fields[name]}"
    aliases = _aliases(container)
    camel = json_name(name)
    if camel != name and camel in aliases:
        return f"unknown field (did you mean {camel}?)"
    close = difflib.get_close_matches(name, aliases, n=1, cutoff=0.75)
    if close:
        return f"unknown field (did you mean {close[0]}?)"
    return "unknown field"
