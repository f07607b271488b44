"""Kubernetes v1 Secret: where an ingress gateway's server certificate comes from
(a Gateway server's `tls.credentialName`, read as Istio reads it: model.credentials).

`data` values are base64, as Kubernetes serves them; `stringData` values are plain text.
On apply the API server merges stringData into data (stringData wins) and stores data
only; `stored_body` does the same, so a stored Secret, `get -o yaml` and the mesh see
data alone, in canonical base64.

A Secret's values never appear in a message: its repr and str name the keys only, a
type problem under data/stringData names what kind of value was found, never the value,
and pydantic's own error text hides the input.
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BeforeValidator, ConfigDict, Field, PlainValidator

from isthmus.api.base import Resource

__all__ = [
    "SECRET_TYPE_OPAQUE",
    "SECRET_TYPE_TLS",
    "TLS_CERT_KEY",
    "TLS_PRIVATE_KEY_KEY",
    "Secret",
    "decode_data_value",
]

SECRET_TYPE_OPAQUE = "Opaque"
SECRET_TYPE_TLS = "kubernetes.io/tls"
TLS_CERT_KEY = "tls.crt"  # Kubernetes' core.TLSCertKey
TLS_PRIVATE_KEY_KEY = "tls.key"  # Kubernetes' core.TLSPrivateKeyKey


def _value_kind(value: object) -> str:
    """What a value is, for a message that must not show it."""
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    return f"a value of type {type(value).__name__}"


def _secret_map(value: object) -> object:
    if not isinstance(value, dict):
        raise ValueError(f"must be a mapping of keys to values (got {_value_kind(value)})")
    return value


def _secret_value(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a string (got {_value_kind(value)}); quote the value")
    return value


# A map of secret values: checked by hand so that no message ever quotes a value.
SecretValues = Annotated[
    dict[str, Annotated[str, PlainValidator(_secret_value)]], BeforeValidator(_secret_map)
]


def decode_data_value(text: str) -> bytes | None:
    """The bytes of one `data` value, or None if it is not base64.

    As Kubernetes (Go's base64.StdEncoding): padding required, line breaks ignored.
    """
    try:
        return base64.b64decode(text.replace("\r", "").replace("\n", ""), validate=True)
    except (binascii.Error, ValueError):
        return None


class Secret(Resource):
    """`type` (default Opaque), `data` (base64), `stringData` (plain), `immutable`."""

    model_config = ConfigDict(hide_input_in_errors=True)  # merged with IstioModel's

    type: str | None = None
    data: SecretValues = Field(default_factory=dict, repr=False)
    string_data: SecretValues = Field(default_factory=dict, repr=False)
    immutable: bool | None = None

    @property
    def secret_type(self) -> str:
        """The type as Kubernetes defaults it: Opaque when unset or empty."""
        return self.type or SECRET_TYPE_OPAQUE

    @property
    def keys(self) -> list[str]:
        """Every key the Secret holds (data and stringData), sorted."""
        return sorted({*self.data, *self.string_data})

    @functools.cached_property
    def decoded(self) -> Mapping[str, bytes]:
        """Every value as bytes, stringData winning over data (as Kubernetes merges them).

        Only for a validated Secret (every data value is base64); sorted by key.
        """
        values: dict[str, bytes] = {}
        for key, text in self.data.items():
            raw = decode_data_value(text)
            if raw is None:
                raise ValueError(f"data[{key}] is not base64 (the Secret was not validated)")
            values[key] = raw
        for key, text in self.string_data.items():
            values[key] = text.encode()
        return {key: values[key] for key in sorted(values)}

    def stored_body(self, body: dict[str, Any]) -> dict[str, Any]:
        """The body the API server stores: stringData merged into data (in canonical
        base64, keys sorted), in the place of the first of the two, and dropped."""
        data = {key: base64.b64encode(raw).decode("ascii") for key, raw in self.decoded.items()}
        out: dict[str, Any] = {}
        for name, value in body.items():
            if name in ("data", "stringData"):
                out.setdefault("data", data)
            else:
                out[name] = value
        return out

    def __repr__(self) -> str:
        meta = self.metadata
        return (
            f"Secret({meta.namespace or ''}/{meta.name}, type={self.secret_type}, keys={self.keys})"
        )

    def __str__(self) -> str:
        return repr(self)
