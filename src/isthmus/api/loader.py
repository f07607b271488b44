"""YAML text in, typed and validated objects out; every problem one line for the user.

`load_documents` is what `apply` uses: it reads a multi-document stream (expanding
`kind: List`), fills in default namespaces, parses each object into its model, runs
the semantic checks, and either returns everything or raises one ApiError listing
every problem of every document. `load_sources` does the same for several inputs (an
apply's `-f` arguments). `parse_resource` re-parses a stored body.

The same object (kind, namespace, name) may appear more than once in one apply, as
kubectl allows: every copy is parsed and checked, and `final_objects` gives what the
apply writes, the last copy of each object, in the place of its first (kubectl applies
the documents in order, so the object is created where it first appears and ends as
its last copy says).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from yaml.nodes import Node

from isthmus.api.base import Resource
from isthmus.api.errors import ROOT, ApiError, FieldProblem, one_line, short_repr
from isthmus.api.registry import LIST_API_VERSION, LIST_KIND, KindInfo, UnknownKindError, lookup
from isthmus.api.schema_errors import validation_problems
from isthmus.api.validation import validate_resource
from isthmus.api.yamlstream import (
    YamlProblem,
    copy_tree,
    decode_input,
    item_lines,
    plain_data_problems,
    prune_nulls,
    read_documents,
)

__all__ = [
    "ApiError",
    "FinalObject",
    "LoadedObject",
    "final_objects",
    "load_documents",
    "load_sources",
    "parse_resource",
]

_LABEL_PART_MAX = 100


@dataclass(frozen=True)
class LoadedObject:
    """One object from the input: where it came from, its typed model, and its body.

    `index` is the 0-based position of its YAML document in the source (items of a
    `kind: List` share their List's index). `body` is the user's mapping with
    metadata.namespace filled in (dropped for cluster-scoped kinds), any top-level
    `status` removed, and what the API server rewrites on write rewritten (a Secret's
    stringData merged into data: `Resource.stored_body`); it is what gets stored and
    shown by `get -o yaml`.
    """

    source: str
    line: int
    index: int
    resource: Resource
    body: dict[str, Any]

    @property
    def key(self) -> tuple[str, str, str]:
        """(kind, namespace, name); namespace is "" for cluster-scoped kinds."""
        meta = self.resource.metadata
        return (self.resource.kind, meta.namespace or "", meta.name)

    @property
    def place(self) -> str:
        """`app.yaml:12`: where the object's document starts."""
        return f"{self.source}:{self.line}"


@dataclass(frozen=True)
class FinalObject:
    """One object as an apply leaves it: every copy of its key in the input, in order.

    The last copy is what gets stored; the earlier ones were checked like any document
    but are superseded within the same apply.
    """

    copies: tuple[LoadedObject, ...]

    @property
    def last(self) -> LoadedObject:
        return self.copies[-1]

    @property
    def superseded(self) -> tuple[LoadedObject, ...]:
        return self.copies[:-1]


def final_objects(objects: Iterable[LoadedObject]) -> list[FinalObject]:
    """Each distinct object once, in the order of its first copy, ending as its last copy.

    This is kubectl's document order in one transaction: a later copy of an object wins,
    and no intermediate copy is ever stored or seen by a watcher.
    """
    copies: dict[tuple[str, str, str], list[LoadedObject]] = {}
    for obj in objects:
        copies.setdefault(obj.key, []).append(obj)
    return [FinalObject(tuple(found)) for found in copies.values()]


@dataclass(frozen=True)
class _Place:
    """Where a document sits, for messages: `app.yaml:12 VirtualService prod/reviews`."""

    source: str
    line: int | None
    index: int | None
    item: int | None = None

    def prefix(self, data: Any, default_namespace: str) -> str:
        location = f"{self.source}:{self.line}" if self.line is not None else self.source
        return f"{location} {self._label(data, default_namespace)}"

    def _label(self, data: Any, default_namespace: str) -> str:
        where = "object" if self.index is None else f"document {self.index + 1}"
        if self.item is not None:
            where += f" items[{self.item}]"
        if not isinstance(data, dict):
            return where
        kind = _text(data.get("kind"))
        meta = data.get("metadata")
        name = _text(meta.get("name")) if isinstance(meta, dict) else None
        if kind is None:
            return where
        if name is None:
            return f"{kind} in {where}"
        if kind == "Namespace":
            return f"{kind} {name}"
        namespace = _text(meta.get("namespace")) if isinstance(meta, dict) else None
        return f"{kind} {namespace or default_namespace}/{name}"


def _text(value: object) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    shown = one_line(value)
    return shown if len(shown) <= _LABEL_PART_MAX else shown[: _LABEL_PART_MAX - 3] + "..."


def load_documents(
    data: str | bytes, source: str, default_namespace: str = "default"
) -> list[LoadedObject]:
    """Parse and validate every object in a YAML stream; raise ApiError listing all problems."""
    decoded = decode_input(data)
    if isinstance(decoded, YamlProblem):
        raise ApiError([_stream_line(source, decoded)])
    text, encoded = decoded
    documents, problem = read_documents(text, encoded)
    loader = _Loader(source, default_namespace)
    for document in documents:
        loader.load(document.data, document.line, document.index, document.node)
    if problem is not None:
        loader.errors.append(_stream_line(source, problem))
    if loader.errors:
        raise ApiError(loader.errors)
    return loader.loaded


def load_sources(
    sources: Iterable[tuple[str, str | bytes]], default_namespace: str = "default"
) -> list[LoadedObject]:
    """`load_documents` over several (source, text) inputs, in order; raise one ApiError
    with the problems of every input."""
    objects: list[LoadedObject] = []
    errors: list[str] = []
    for source, text in sources:
        try:
            objects.extend(load_documents(text, source, default_namespace))
        except ApiError as exc:
            errors.extend(exc.errors)
    if errors:
        raise ApiError(errors)
    return objects


def parse_resource(body: dict[str, Any], source: str = "<stored>") -> Resource:
    """Parse and validate one stored body (as LoadedObject.body holds it); raise ApiError."""
    place = _Place(source, None, None)
    loader = _Loader(source, "default")
    info = loader.header(body, place)
    if info is None:
        raise ApiError(loader.errors)
    outcome = _parse(info, body)
    if not isinstance(outcome, Resource):
        raise ApiError([_problem_line(place.prefix(body, "default"), p) for p in outcome])
    return outcome


class _Loader:
    """Accumulates loaded objects and error lines across the documents of one input."""

    def __init__(self, source: str, default_namespace: str) -> None:
        self.source = source
        self.default_namespace = default_namespace
        self.loaded: list[LoadedObject] = []
        self.errors: list[str] = []

    def load(
        self, data: Any, line: int, index: int, node: Node | None, item: int | None = None
    ) -> None:
        place = _Place(self.source, line, index, item)
        info = self.header(data, place)
        if info is None:
            return
        if info.kind == LIST_KIND:
            self._load_list(data, place, node)
            return
        body = _normalized_body(data, info, self.default_namespace)
        outcome = _parse(info, body)
        if isinstance(outcome, Resource):
            stored = outcome.stored_body(body)
            self.loaded.append(LoadedObject(self.source, line, index, outcome, stored))
        else:
            prefix = place.prefix(data, self.default_namespace)
            self.errors.extend(_problem_line(prefix, problem) for problem in outcome)

    def header(self, data: Any, place: _Place) -> KindInfo | None:
        """Check the document is a plain mapping naming a known kind; report why not."""
        prefix = place.prefix(data, self.default_namespace)
        if not isinstance(data, dict):
            self.errors.append(
                f"{prefix}: must be a mapping with apiVersion, kind and metadata "
                f"(got {_describe(data)})"
            )
            return None
        plain = plain_data_problems(data, ROOT)
        if plain:
            self.errors.extend(_problem_line(prefix, FieldProblem(*p)) for p in plain)
            return None
        problems = [
            FieldProblem(field, _header_problem(data.get(field)))
            for field in ("apiVersion", "kind")
            if not isinstance(data.get(field), str) or not data.get(field)
        ]
        if problems:
            self.errors.extend(_problem_line(prefix, problem) for problem in problems)
            return None
        api_version, kind = data["apiVersion"], data["kind"]
        if kind == LIST_KIND and api_version == LIST_API_VERSION:
            if place.item is not None:
                self.errors.append(f"{prefix}: a List cannot contain another List")
                return None
            return _LIST_INFO
        try:
            return lookup(api_version, kind)
        except UnknownKindError as error:
            self.errors.append(f"{prefix}: {one_line(str(error))}")
            return None

    def _load_list(self, data: dict[str, Any], place: _Place, node: Node | None) -> None:
        items = data.get("items")
        if items is None:
            return
        if not isinstance(items, list):
            self.errors.append(
                f"{place.prefix(data, self.default_namespace)}: items: must be a list "
                f"(got {_describe(items)})"
            )
            return
        lines = item_lines(node, "items") if node is not None else []
        for position, item in enumerate(items):
            line = lines[position] if position < len(lines) else place.line
            assert line is not None and place.index is not None
            self.load(item, line, place.index, None, position)


# `kind: List` is a transport wrapper, not a stored kind: it has no model of its own.
_LIST_INFO = KindInfo(LIST_KIND, (LIST_API_VERSION,), Resource, False, "lists")


def _normalized_body(
    data: dict[str, Any], info: KindInfo, default_namespace: str
) -> dict[str, Any]:
    body: dict[str, Any] = copy_tree(data)
    body.pop("status", None)
    meta = body.get("metadata")
    if isinstance(meta, dict):
        if not info.namespaced:
            meta.pop("namespace", None)
        elif not meta.get("namespace"):
            meta["namespace"] = default_namespace
    return body


def _parse(info: KindInfo, body: dict[str, Any]) -> Resource | list[FieldProblem]:
    """The typed object, or its structural problems, or else its semantic problems."""
    candidate = prune_nulls(body)
    candidate.pop("status", None)
    try:
        resource = info.model.model_validate(candidate, by_alias=True, by_name=False)
    except ValidationError as error:
        return validation_problems(info.model, error)
    except RecursionError:
        return [FieldProblem("", "too deeply nested")]
    problems = validate_resource(resource)
    return problems if problems else resource


def _header_problem(value: object) -> str:
    if value is None or value == "":
        return "is required"
    return f"must be a string (got {_describe(value)})"


def _problem_line(prefix: str, problem: FieldProblem) -> str:
    return one_line(f"{prefix}: {problem.render()}")


def _stream_line(source: str, problem: YamlProblem) -> str:
    if problem.line is None:
        return one_line(f"{source}: {problem.message}")
    return one_line(f"{source}:{problem.line} {problem.message}")


def _describe(value: object) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return short_repr(value)
