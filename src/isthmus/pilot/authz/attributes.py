"""Istio's authorization attributes, each as one Envoy RBAC permission or principal
per value (pilot/pkg/security/authz/model/generator.go).

Attributes that exist only in HTTP requests are marked `http_only`: on a TCP filter
chain an ALLOW rule using one is dropped and a DENY or AUDIT rule ignores it. The
`request.auth.*` attributes live in `jwt_attributes`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeAlias, TypeVar

from envoy.config.core.v3 import address_pb2, extension_pb2
from envoy.config.rbac.v3 import rbac_pb2
from envoy.extensions.path.match.uri_template.v3 import uri_template_match_pb2
from google.protobuf import wrappers_pb2

from isthmus.pilot.authz import matchers
from isthmus.pilot.envoy.typed import pack

Permission: TypeAlias = rbac_pb2.Permission
Principal: TypeAlias = rbac_pb2.Principal
M = TypeVar("M")
BuildAll: TypeAlias = Callable[[Sequence[str]], M]

SPIFFE_PREFIX = "spiffe://"
METHOD_HEADER = ":method"
HOST_HEADER = ":authority"
URI_TEMPLATE_NAME = "uri-template"  # Istio's TypedExtensionConfig name
_MATCH_ONE, _MATCH_ANY = "{*}", "{**}"


@dataclass(frozen=True)
class Attribute(Generic[M]):
    """How one value of an attribute becomes an Envoy permission or principal.

    With `build_all` (Istio's "extended" generators) all values of a term become one
    matcher together, instead of an OR of one matcher per value."""

    key: str
    build: Callable[[str], M]
    http_only: bool = False
    build_all: BuildAll[M] | None = None


def cidr_range(value: str) -> address_pb2.CidrRange:
    """`10.0.0.1` is a /32 (/128 for IPv6); the address keeps its host bits, as Istio's."""
    interface = ipaddress.ip_interface(value)
    return address_pb2.CidrRange(
        address_prefix=str(interface.ip),
        prefix_len=wrappers_pb2.UInt32Value(value=interface.network.prefixlen),
    )


def is_path_template(path: str) -> bool:
    return _MATCH_ONE in path or _MATCH_ANY in path


def envoy_path_template(path: str) -> str:
    """Istio's `{*}` and `{**}` are Envoy's uri_template operators `*` and `**`."""
    return path.replace(_MATCH_ANY, "**").replace(_MATCH_ONE, "*")


# --- permissions: what is asked for ----------------------------------------------------


def _destination_ip(value: str) -> Permission:
    return Permission(destination_ip=cidr_range(value))


def _destination_port(value: str) -> Permission:
    return Permission(destination_port=int(value))


def _sni(value: str) -> Permission:
    return Permission(requested_server_name=matchers.string_matcher(value))


def _host(value: str) -> Permission:
    return Permission(header=matchers.header_matcher(HOST_HEADER, value, ignore_case=True))


def _method(value: str) -> Permission:
    return Permission(header=matchers.header_matcher(METHOD_HEADER, value))


def _path(value: str) -> Permission:
    if is_path_template(value):
        template = uri_template_match_pb2.UriTemplateMatchConfig(
            path_template=envoy_path_template(value)
        )
        return Permission(
            uri_template=extension_pb2.TypedExtensionConfig(
                name=URI_TEMPLATE_NAME, typed_config=pack(template)
            )
        )
    return Permission(url_path=matchers.path_matcher(value))


HOSTS = Attribute[Permission](":authority", _host, http_only=True)
METHODS = Attribute[Permission](":method", _method, http_only=True)
PATHS = Attribute[Permission]("path-matcher", _path, http_only=True)
PORTS = Attribute[Permission]("destination.port", _destination_port)
DESTINATION_IP = Attribute[Permission]("destination.ip", _destination_ip)
SNI = Attribute[Permission]("connection.sni", _sni)


# --- principals: who asks --------------------------------------------------------------


def _principal(value: str) -> Principal:
    """The peer's certificate identity (URI SAN) as mTLS presents it: `spiffe://<value>`."""
    return Principal(
        authenticated=Principal.Authenticated(
            principal_name=matchers.string_matcher(value, SPIFFE_PREFIX)
        )
    )


def _namespace(value: str) -> Principal:
    """`*` in a namespace matches anything; the rest is literal."""
    pattern = ".*".join(matchers.quote_meta(part) for part in value.split("*"))
    return Principal(
        authenticated=Principal.Authenticated(principal_name=matchers.regex(f".*/ns/{pattern}/.*"))
    )


def service_account_regex(default_namespace: str, value: str) -> str:
    """`name` or `namespace/name` -> the SPIFFE identities of that Kubernetes account."""
    namespace, slash, account = value.partition("/")
    if not slash:
        namespace, account = default_namespace, value
    return (
        f"spiffe://.+/ns/{matchers.quote_meta(namespace)}/(.+/|)sa/"
        f"{matchers.quote_meta(account)}(/.+)?"
    )


def service_accounts(policy_namespace: str) -> Attribute[Principal]:
    def build(value: str) -> Principal:
        return Principal(
            authenticated=Principal.Authenticated(
                principal_name=matchers.regex(service_account_regex(policy_namespace, value))
            )
        )

    return Attribute[Principal]("source.serviceAccount", build)


def _direct_remote_ip(value: str) -> Principal:
    return Principal(direct_remote_ip=cidr_range(value))


def _remote_ip(value: str) -> Principal:
    return Principal(remote_ip=cidr_range(value))


def request_header(key: str, name: str) -> Attribute[Principal]:
    def build(value: str) -> Principal:
        return Principal(header=matchers.header_matcher(name, value))

    return Attribute[Principal](key, build, http_only=True)


PRINCIPALS = Attribute[Principal]("source.principal", _principal)
NAMESPACES = Attribute[Principal]("source.namespace", _namespace)
SOURCE_IP = Attribute[Principal]("source.ip", _direct_remote_ip)
REMOTE_IP = Attribute[Principal]("remote.ip", _remote_ip)
