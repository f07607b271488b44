"""Shared pieces of every model: strict camelCase models, object metadata, durations.

Models are strict like the Kubernetes API server: a string is never silently turned
into a number, an unknown field is an error, and the YAML names are Istio's JSON names
(lowerCamelCase of the proto field names).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from types import MappingProxyType
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator

from isthmus.api.durations import parse_duration
from isthmus.api.errors import short_repr

__all__ = [
    "Duration",
    "Int32",
    "IntOrString",
    "IstioModel",
    "ObjectMeta",
    "Resource",
    "UInt32",
    "UInt64",
    "json_name",
    "parse_duration",
]


def json_name(field_name: str) -> str:
    """The JSON name protoc gives a proto field: drop each "_" and upper-case what follows.

    Unlike a generic camel-case helper this keeps digits as they are, so
    `consecutive_5xx_errors` becomes `consecutive5xxErrors` exactly as in Istio's YAML.
    """
    out: list[str] = []
    upper_next = False
    for char in field_name:
        if char == "_":
            upper_next = True
            continue
        out.append(char.upper() if upper_next else char)
        upper_next = False
    return "".join(out)


Int32 = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]
UInt32 = Annotated[int, Field(ge=0, le=2**32 - 1)]
UInt64 = Annotated[int, Field(ge=0, le=2**64 - 1)]
Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def _int_or_string(value: object) -> int | str:
    """Kubernetes IntOrString: a YAML integer or a YAML string, nothing else."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"must be an integer or a string (got {short_repr(value)})")
    return value


IntOrString = Annotated[int | str, PlainValidator(_int_or_string)]


class IstioModel(BaseModel):
    """Base of every spec model: camelCase field names, unknown fields rejected.

    `not_supported_fields` names (in YAML spelling) the fields Istio has but isthmus does
    not model yet, so that using one reads "not supported yet" instead of "unknown field".
    `removed_fields` maps fields Istio once had and removed to what replaces them, so that
    YAML copied from an old blog post says what to write instead.
    """

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=json_name,
        validate_by_name=True,
        validate_by_alias=True,
        frozen=True,
        strict=True,
    )

    not_supported_fields: ClassVar[frozenset[str]] = frozenset()
    removed_fields: ClassVar[Mapping[str, str]] = MappingProxyType({})


class ObjectMeta(IstioModel):
    """The part of Kubernetes ObjectMeta a user may write, plus server-set fields that
    `get -o yaml` output carries (so that such output can be applied again)."""

    not_supported_fields = frozenset({"generateName"})

    name: str
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    resource_version: str | None = None
    generation: int | None = None
    uid: str | None = None
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    deletion_grace_period_seconds: int | None = None
    finalizers: list[str] = Field(default_factory=list)
    owner_references: list[dict[str, Any]] = Field(default_factory=list)
    managed_fields: list[dict[str, Any]] = Field(default_factory=list)
    self_link: str | None = None


class Resource(IstioModel):
    """A top-level object: apiVersion, kind, metadata and (per kind) spec."""

    api_version: str
    kind: str
    metadata: ObjectMeta

    def stored_body(self, body: dict[str, Any]) -> dict[str, Any]:
        """The body an apply stores for this object: the user's, as given. A kind the API
        server rewrites on write (Secret merges stringData into data) overrides this."""
        return body
