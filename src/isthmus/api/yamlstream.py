"""Hostile-input-safe reading of a multi-document YAML stream into plain data.

libyaml (the C part of yaml.CSafeLoader) produces the events; a small composer on top
of it bounds what untrusted input can cost before any Python object is built:
nesting depth, nodes after alias expansion (billion laughs), recursive aliases. Values
are then constructed as Kubernetes reads YAML: timestamps stay strings, duplicate keys
are errors, and only JSON-like values survive (see `plain_data_problems`). Work stays
linear in the input: integer keys become strings (as Kubernetes reads them) and float
keys NumberKeys, neither open to hash flooding, and the paths of
problems stop growing once longer than an error line shows.
"""

from __future__ import annotations

import math
import re
import struct
import sys
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.error import MarkedYAMLError
from yaml.events import AliasEvent, MappingStartEvent, SequenceStartEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import ReaderError
from yaml.resolver import Resolver

from isthmus.api.errors import MAX_LINE, FieldPath, short_repr

MAX_INPUT_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 100
MAX_NODES = 200_000  # per stream (about 10,000 objects), each alias counted as a full copy

_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_INT_TAG = "tag:yaml.org,2002:int"
_YAML_TAG_PREFIX = "tag:yaml.org,2002:"


_BLANK_OR_END = "\0 \t\r\n\x85\u2028\u2029"
_FLOW_INDICATORS = ",?[]{}"


class _PythonEventSource(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):
    """The pure-Python event source, with plain scalars ended where go-yaml ends them.

    Kubernetes reads YAML with go-yaml, which ends a plain scalar only at a colon followed
    by a blank or, inside a flow collection, at one of `,?[]{}`. libyaml refuses a colon
    followed by `,]}` inside a flow collection and PyYAML ends the scalar before it, so
    both misread `addresses: [1.2.3.4, 2001:db8::]`; go-yaml reads two strings.
    """

    def __init__(self, stream: str) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)

    def scan_plain(self) -> yaml.ScalarToken:
        start = end = self.get_mark()
        indent = self.indent + 1
        chunks: list[str] = []
        spaces: list[str] = []
        while self.peek() != "#":
            length = self._plain_run()
            if length == 0:
                break
            self.allow_simple_key = False
            chunks += spaces
            chunks.append(self.prefix(length))
            self.forward(length)
            end = self.get_mark()
            blanks = self.scan_plain_spaces(indent, start)
            if not blanks or self.peek() == "#" or (not self.flow_level and self.column < indent):
                break
            spaces = blanks
        return yaml.ScalarToken("".join(chunks), True, start, end)

    def _plain_run(self) -> int:
        """Length of the plain scalar's next run of non-blank characters."""
        length = 0
        while True:
            char = self.peek(length)
            if char in _BLANK_OR_END:
                return length
            if char == ":" and self.peek(length + 1) in _BLANK_OR_END:
                return length
            if self.flow_level and char in _FLOW_INDICATORS:
                return length
            length += 1


def _event_source() -> Any:
    """libyaml's parser (the C half of yaml.CSafeLoader) when PyYAML was built with it."""
    try:
        from yaml._yaml import CParser
    except ImportError:  # pragma: no cover - PyYAML built without libyaml
        return _PythonEventSource
    return CParser


_EventSource: Any = _event_source()


class LimitError(MarkedYAMLError):
    """Input that is valid YAML but too expensive to accept."""


@dataclass(frozen=True)
class YamlDocument:
    """One non-empty document: its 1-based start line, position in the stream, data."""

    line: int
    index: int
    data: Any
    node: Node


@dataclass(frozen=True)
class YamlProblem:
    """Why (part of) the stream could not be read; `line` is None when unknown."""

    line: int | None
    message: str


class _BoundedLoader(Composer, SafeConstructor, Resolver):
    """Composer with limits, over the events of `_events`, constructing like Kubernetes."""

    _events: Any
    peek_event: Any  # from the event source a subclass mixes in

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP_TAG]
        for first, resolvers in Resolver.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream: str) -> None:
        self._events.__init__(self, stream)
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)
        self._depth = 0
        self._open_anchors: set[str] = set()
        self._sizes: dict[int, int] = {}
        self._total_nodes = 0

    def compose_document(self) -> Node:
        node = _present(super().compose_document())
        self._sizes.clear()  # anchors do not outlive their document
        return node

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        event: Any = self.peek_event()
        if isinstance(event, AliasEvent):
            if event.anchor in self._open_anchors:
                raise _limit(f"alias *{event.anchor} refers to a node that contains it", event)
            node = _present(super().compose_node(parent, index))
            self._count(self._sizes.get(id(node), 1), event)
            return node
        self._count(1, event)
        if not isinstance(event, SequenceStartEvent | MappingStartEvent):
            return _present(super().compose_node(parent, index))
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _limit(f"nesting is deeper than {MAX_DEPTH} levels", event)
        first = self._total_nodes
        if event.anchor is not None:
            self._open_anchors.add(event.anchor)
        node = _present(super().compose_node(parent, index))
        if event.anchor is not None:
            self._open_anchors.discard(event.anchor)
            self._sizes[id(node)] = self._total_nodes - first + 1
        self._depth -= 1
        return node

    def _count(self, nodes: int, event: Any) -> None:
        """Charge `nodes` to the stream; an alias costs as much as what it repeats."""
        self._total_nodes += nodes
        if self._total_nodes > MAX_NODES:
            raise _limit(
                f"input has more than {MAX_NODES:,} YAML nodes "
                "(an alias counts as a copy of what it refers to)",
                event,
            )

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        """As PyYAML, but a scalar its tag cannot read is a YAML error, not a traceback."""
        if not isinstance(node, ScalarNode):
            return super().construct_object(node, deep=deep)
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, ArithmeticError, LookupError, AttributeError, TypeError):
            raise _unreadable_scalar(node) from None

    def construct_mapping(self, node: Node, deep: bool = False) -> dict[Any, Any]:
        """As PyYAML (merge keys included), but duplicate keys are errors, and numbers as
        keys become strings as in Kubernetes (see `_hash_safe`)."""
        if not isinstance(node, MappingNode):  # `!!map` or `!!set` on a scalar or a sequence
            found = "scalar" if isinstance(node, ScalarNode) else "sequence"
            raise ConstructorError(
                None, None, f"expected a mapping node, but found {found}", node.start_mark
            )
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = _hash_safe(self.construct_object(key_node, deep=True))
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                break  # unhashable: reported below
            if duplicate:
                raise ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {_key_shown(key)}",
                    key_node.start_mark,
                )
        self.flatten_mapping(node)
        mapping: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _hash_safe(self.construct_object(key_node, deep=deep))
            if not isinstance(key, Hashable):
                raise ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    "found unhashable key",
                    key_node.start_mark,
                )
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping


class _FastLoader(_BoundedLoader, _EventSource):  # type: ignore[misc]
    """libyaml's events: fast, and the same as go-yaml's except where it refuses."""

    _events = _EventSource


class _KubernetesLoader(_BoundedLoader, _PythonEventSource):
    """Pure-Python events that read what libyaml refuses as go-yaml reads it."""

    _events = _PythonEventSource


class NumberKey:
    """A mapping key YAML wrote as a number or a boolean (`8080: x`, `true: y`).

    JSON, and so every object, has string keys only; these are kept for
    `plain_data_problems` to report. They are wrapped because Python hashes a number by
    its value modulo 2**61 - 1: crafted keys (k * (2**61 - 1)) all collide, and a mapping
    of n of them would cost n**2 to build. A NumberKey equals another as the numbers do
    (`1`, `1.0` and `true` are one key) and hashes through the seeded bytes hash.
    """

    __slots__ = ("_hash", "value")

    def __init__(self, value: int | float) -> None:
        self.value = value
        if isinstance(value, int) or value.is_integer():
            number = int(value)
            data = number.to_bytes((number.bit_length() + 8) // 8, "little", signed=True)
        else:
            data = b"." + struct.pack("<d", value)
        self._hash = hash(data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NumberKey) and self.value == other.value

    def __hash__(self) -> int:
        return self._hash

    def __str__(self) -> str:
        return str(self.value)

    def __repr__(self) -> str:
        return f"NumberKey({self.value!r})"


def _hash_safe(key: Any) -> Any:
    """`key` as Kubernetes reads it, and hashed safely.

    Kubernetes (sigs.k8s.io/yaml) turns integer and boolean keys into strings, so
    `portLevelMtls: {8080: ...}` means `"8080"`; strings hash with a seed the input can not
    steer. A float key stays a NumberKey (reported later: Kubernetes' float spelling is
    Go's, not ours); infinities and NaN collide with nothing and stay as they are."""
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int):
        return str(key)
    if isinstance(key, float) and math.isfinite(key):
        return NumberKey(key)
    return key


def _key_shown(key: Any) -> str:
    return short_repr(key.value if isinstance(key, NumberKey) else key)


def _unreadable_scalar(node: ScalarNode) -> MarkedYAMLError:
    tag = node.tag
    if tag.startswith(_YAML_TAG_PREFIX):
        tag = "!!" + tag[len(_YAML_TAG_PREFIX) :]
    digits = sum(char.isdigit() for char in node.value)
    if node.tag == _INT_TAG and digits > sys.get_int_max_str_digits() > 0:
        return LimitError(
            problem=f"an integer has more than {sys.get_int_max_str_digits():,} digits",
            problem_mark=node.start_mark,
        )
    return ConstructorError(
        None, None, f"cannot read {short_repr(node.value)} as {tag}", node.start_mark
    )


def _limit(problem: str, event: Any) -> LimitError:
    return LimitError(problem=problem, problem_mark=event.start_mark)


def _present(node: Node | None) -> Node:
    """The composer returns a node for every event it is called on."""
    assert node is not None
    return node


def decode_input(data: str | bytes) -> tuple[str, bytes] | YamlProblem:
    """Check size and encoding up front; return the text (BOM removed) and its UTF-8."""
    if isinstance(data, str):
        if len(data) > MAX_INPUT_BYTES:
            return _too_large(len(data))
        try:
            encoded = data.encode("utf-8")
        except UnicodeEncodeError as error:
            return YamlProblem(None, f"input is not valid text ({error.reason})")
    else:
        encoded = bytes(data)
    if len(encoded) > MAX_INPUT_BYTES:
        return _too_large(len(encoded))
    if encoded.startswith(b"\xef\xbb\xbf"):
        encoded = encoded[3:]
    try:
        text = encoded.decode("utf-8")
    except UnicodeDecodeError as error:
        line = encoded[: error.start].count(b"\n") + 1
        return YamlProblem(
            line,
            f"input is not UTF-8 text (byte 0x{encoded[error.start]:02x} at offset {error.start})",
        )
    return text, encoded


def _too_large(size: int) -> YamlProblem:
    return YamlProblem(
        None,
        f"input is {size:,} bytes; the limit is {MAX_INPUT_BYTES // 2**20} MiB "
        f"({MAX_INPUT_BYTES:,} bytes)",
    )


def read_documents(text: str, encoded: bytes) -> tuple[list[YamlDocument], YamlProblem | None]:
    """Documents in order (empty ones skipped) and the problem that stopped reading, if any.

    libyaml reads the stream; where it refuses a colon that go-yaml reads as part of a
    plain scalar, the stream is read again by the slower scanner that follows go-yaml.
    """
    documents, problem = _read(_FastLoader, text, encoded)
    if problem is not None and problem.message == _LIBYAML_COLON:
        return _read(_KubernetesLoader, text, encoded)
    return documents, problem


# libyaml's refusal of `x:` then one of `,?[]{}` in a flow collection, as `_marked_problem` has it.
_LIBYAML_COLON = "invalid YAML: found unexpected ':' (while scanning a plain scalar)"


def _read(
    loader_class: type[_BoundedLoader], text: str, encoded: bytes
) -> tuple[list[YamlDocument], YamlProblem | None]:
    documents: list[YamlDocument] = []
    index = 0
    try:
        loader = loader_class(text)
        while loader.check_node():
            node = _present(loader.get_node())
            data = loader.construct_document(node)
            if data is not None:
                documents.append(YamlDocument(node.start_mark.line + 1, index, data, node))
            index += 1
    except MarkedYAMLError as error:
        return documents, _marked_problem(error, text)
    except ReaderError as error:
        line = encoded[: error.position].count(b"\n") + 1
        return documents, YamlProblem(
            line, f"invalid YAML: {error.reason} (character #x{error.character:04x})"
        )
    except (RecursionError, MemoryError):
        return documents, YamlProblem(None, "invalid YAML: input is too deeply nested or too large")
    return documents, None


def _marked_problem(error: MarkedYAMLError, text: str) -> YamlProblem:
    mark = error.problem_mark or error.context_mark
    line = mark.line + 1 if mark is not None else None
    if isinstance(error, LimitError):
        return YamlProblem(line, f"input rejected: {error.problem}")
    if "nesting depth" in (error.problem or ""):  # libyaml's own, higher, limit
        return YamlProblem(line, f"input rejected: nesting is deeper than {MAX_DEPTH} levels")
    if mark is not None and _char_at(text, mark.line, mark.column) == "\t":
        return YamlProblem(line, "invalid YAML: tab character; YAML indentation must use spaces")
    message = error.problem or "invalid YAML"
    if error.context:
        message = f"{message} ({error.context})"
    return YamlProblem(line, f"invalid YAML: {message}")


def _char_at(text: str, line: int, column: int) -> str:
    lines = text.split("\n", line + 1)
    if line < len(lines) and column < len(lines[line]):
        return lines[line][column]
    return ""


def item_lines(node: Node, key: str) -> list[int]:
    """1-based start lines of the items of the sequence at `key` in a mapping node."""
    if isinstance(node, MappingNode):
        for key_node, value_node in node.value:
            if (
                isinstance(key_node, ScalarNode)
                and key_node.value == key
                and isinstance(value_node, SequenceNode)
            ):
                return [item.start_mark.line + 1 for item in value_node.value]
    return []


def plain_data_problems(value: Any, path: FieldPath) -> list[tuple[str, str]]:
    """(path, message) for anything JSON cannot hold: non-string keys, dates, binary, NaN.

    Each path is meant for an error line (`one_line`), and is given as such a line shows
    it: control characters and runs of blanks become one space, and a path is cut once
    it has more visible characters than a line can hold. The line reads the same, and a
    long key above many values costs its length once, not once per value.
    """
    problems: list[tuple[str, str]] = []
    start = _shown(path.text)
    _check_plain(value, start, _visible(start), {}, problems)
    return problems


# An error line (errors.one_line) shows at most this many characters: a path with more
# visible ones than that reads the same however it goes on.
_SHOWN_PATH_MAX = MAX_LINE
_BLANK_RUN = re.compile("  +")


def _shown(text: str) -> str:
    """`text` with each control character a space and each run of spaces one space."""
    if not text.isprintable():
        text = "".join(char if char.isprintable() else " " for char in text)
    if "  " in text:
        text = _BLANK_RUN.sub(" ", text)
    return text


def _visible(shown: str, end: int | None = None) -> int:
    """Characters of shown[:end] an error line keeps: all but spaces (the only printable
    blank)."""
    end = len(shown) if end is None else min(end, len(shown))
    return end - shown.count(" ", 0, end)


def _shown_key(key: str) -> tuple[str, int, bool]:
    """How `key` reads in a path: its shown text (cut after more visible characters than
    a line shows), their number, and whether it is written `.key` rather than `[key]`."""
    shown = _shown(key)
    needed = _SHOWN_PATH_MAX + 1
    end = needed
    while end < len(shown) and _visible(shown, end) < needed:
        end = needed + shown.count(" ", 0, end)
    shown = shown[:end]
    return shown, _visible(shown), _is_plain_name(key)


def _check_plain(
    value: Any,
    path: str,
    visible: int,
    keys: dict[str, tuple[str, int, bool]],
    problems: list[tuple[str, str]],
) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                problems.append((path, f"keys must be strings; quote the key {_key_shown(key)}"))
            elif not _is_plain_scalar(item):
                if visible > _SHOWN_PATH_MAX:
                    _check_plain(item, path, visible, keys, problems)
                    continue
                shown = keys.get(key)
                if shown is None:
                    shown = keys[key] = _shown_key(key)
                text, key_visible, plain = shown
                if not plain:
                    child, child_visible = f"{path}[{text}]", visible + key_visible + 2
                elif path:
                    child, child_visible = f"{path}.{text}", visible + key_visible + 1
                else:
                    child, child_visible = text, key_visible
                _check_plain(item, child, child_visible, keys, problems)
    elif isinstance(value, list):
        for position, item in enumerate(value):
            if _is_plain_scalar(item):
                continue
            if visible > _SHOWN_PATH_MAX:
                _check_plain(item, path, visible, keys, problems)
                continue
            index = f"[{position}]"
            _check_plain(item, path + index, visible + len(index), keys, problems)
    elif isinstance(value, float) and not math.isfinite(value):
        problems.append((path, "must be a finite number"))
    elif value is not None and not isinstance(value, str | int | float | bool):
        problems.append((path, f"unsupported YAML value of type {_yaml_type(value)}"))


def _is_plain_scalar(value: Any) -> bool:
    """A value JSON holds as it is (checked first: most values are)."""
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, str | int | bool)


def _is_plain_name(key: str) -> bool:
    return key.isidentifier()


def _yaml_type(value: object) -> str:
    names = {"bytes": "binary", "date": "timestamp", "datetime": "timestamp", "set": "set"}
    name = type(value).__name__
    return names.get(name, name)


def prune_nulls(value: Any) -> Any:
    """A copy without null-valued mapping entries: Kubernetes treats `field: null` as unset."""
    if isinstance(value, dict):
        return {key: prune_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [prune_nulls(item) for item in value]
    return value


def copy_tree(value: Any) -> Any:
    """A deep copy in which aliased (shared) mappings and lists become separate copies."""
    if isinstance(value, dict):
        return {key: copy_tree(item) for key, item in value.items()}
    if isinstance(value, list):
        return [copy_tree(item) for item in value]
    return value
