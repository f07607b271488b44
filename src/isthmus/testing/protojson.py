"""Envoy protobuf messages to JSON and back, with every `google.protobuf.Any` resolved.

`json_format` can only print an `Any` whose type is in the default descriptor pool, and
a type lands there only when its generated `_pb2` module has been imported. Envoy's
extension types (filters, transport sockets, ...) live in hundreds of such modules, so
this module imports exactly the ones a message needs, found from the Any type URLs.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from functools import cache
from typing import Any

from google.protobuf import any_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

_ANY = "google.protobuf.Any"


class UnknownTypeError(LookupError):
    """An Any names a type that no installed protobuf module defines."""


def message_to_dict(message: Message) -> dict[str, Any]:
    """Serialize `message` as Envoy reads JSON: proto field names, Any types resolved."""
    walk(message, lambda _message: None)
    document: dict[str, Any] = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return document


def dict_to_message(data: dict[str, Any], message: Message) -> Message:
    """Parse Envoy JSON `data` into `message`, importing the types its Anys name."""
    _register_any_types_in(data)
    json_format.ParseDict(data, message)
    return message


def message_class(type_name: str) -> type[Message]:
    """Return the generated class of the fully qualified protobuf `type_name`."""
    generated: type[Message] = message_factory.GetMessageClass(_descriptor(type_name))
    return generated


def unpack(packed: any_pb2.Any) -> Message:
    """Unpack an Any into an instance of the type it names."""
    inner = message_class(packed.TypeName())()
    if not packed.Unpack(inner):
        raise UnknownTypeError(packed.type_url)
    return inner


def walk(message: Message, visit: Callable[[Message], None]) -> None:
    """Call `visit` on `message` and on every message nested in it, Anys included.

    `visit` may change a message in place; an Any whose content was visited is packed
    again, so changes inside typed configs survive. A message is visited before its
    children, so a visitor that replaces a subtree sees the replacement walked too.
    """
    visit(message)
    for field, value in message.ListFields():
        if field.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        if _is_map(field):
            value_field = field.message_type.fields_by_name["value"]
            if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                for item in value.values():
                    _walk_one(item, visit)
        elif _is_repeated(field):
            for item in value:
                _walk_one(item, visit)
        else:
            _walk_one(value, visit)


def _walk_one(message: Message, visit: Callable[[Message], None]) -> None:
    if message.DESCRIPTOR.full_name != _ANY:
        walk(message, visit)
        return
    packed = message
    assert isinstance(packed, any_pb2.Any)
    inner = unpack(packed)
    walk(inner, visit)
    packed.Pack(inner)


def _is_repeated(field: FieldDescriptor) -> bool:
    # `label` is gone from newer protobuf runtimes, `is_repeated` absent from older ones.
    if hasattr(field, "is_repeated"):
        return bool(field.is_repeated)
    return bool(field.label == FieldDescriptor.LABEL_REPEATED)


def _is_map(field: FieldDescriptor) -> bool:
    message_type = field.message_type
    return bool(message_type is not None and message_type.GetOptions().map_entry)


def _register_any_types_in(data: object) -> None:
    if isinstance(data, dict):
        type_url = data.get("@type")
        if isinstance(type_url, str):
            _descriptor(type_url.rsplit("/", 1)[-1])
        for value in data.values():
            _register_any_types_in(value)
    elif isinstance(data, list):
        for value in data:
            _register_any_types_in(value)


@cache
def _descriptor(type_name: str) -> Descriptor:
    pool = descriptor_pool.Default()
    found = _find(pool, type_name)
    if found is not None:
        return found
    # A message's proto package is its name minus the last part, or fewer parts for a
    # nested message; import every generated module of the candidate packages.
    parts = type_name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        _import_generated_modules(".".join(parts[:cut]))
        found = _find(pool, type_name)
        if found is not None:
            return found
    raise UnknownTypeError(f"no installed protobuf module defines {type_name!r}")


def _find(pool: descriptor_pool.DescriptorPool, type_name: str) -> Descriptor | None:
    try:
        found: Descriptor = pool.FindMessageTypeByName(type_name)
    except KeyError:
        return None
    return found


@cache
def _import_generated_modules(package: str) -> None:
    try:
        module = importlib.import_module(package)
    except ImportError:
        return
    for info in pkgutil.iter_modules(getattr(module, "__path__", [])):
        if info.name.endswith("_pb2"):
            importlib.import_module(f"{package}.{info.name}")
