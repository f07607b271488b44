"""Semantic checks of typed objects, as Istio's admission webhook (pkg/config/validation)
and the Kubernetes API server apply them, plus "not supported yet" for what isthmus
accepts in the schema but does not translate.

Structural problems (types, unknown fields) are pydantic's job and reported before
these checks run; every check here sees a well-typed object.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from isthmus.api import names
from isthmus.api.authorization import AuthorizationPolicy
from isthmus.api.base import Resource
from isthmus.api.checks_authorization import check_authorization_policy
from isthmus.api.checks_common import check_labels
from isthmus.api.checks_core import check_deployment, check_service, check_service_account
from isthmus.api.checks_destinationrule import check_destination_rule
from isthmus.api.checks_gateway import check_gateway
from isthmus.api.checks_request_authentication import check_request_authentication
from isthmus.api.checks_secret import check_secret
from isthmus.api.checks_security import check_peer_authentication
from isthmus.api.checks_serviceentry import check_service_entry, check_workload_entry
from isthmus.api.checks_sidecar import check_sidecar
from isthmus.api.checks_telemetry import check_telemetry
from isthmus.api.checks_virtualservice import check_virtual_service
from isthmus.api.core import Deployment, Namespace, Service, ServiceAccount
from isthmus.api.errors import FieldPath, FieldProblem, Problems
from isthmus.api.gateway import Gateway
from isthmus.api.networking import DestinationRule, ServiceEntry, VirtualService, WorkloadEntry
from isthmus.api.request_authentication import RequestAuthentication
from isthmus.api.secret import Secret
from isthmus.api.security import PeerAuthentication
from isthmus.api.sidecar import Sidecar
from isthmus.api.telemetry import Telemetry

__all__ = ["validate_resource"]

_KIND_CHECKS: dict[type[Resource], Callable[[Any, Problems], None]] = {
    VirtualService: check_virtual_service,
    DestinationRule: check_destination_rule,
    ServiceEntry: check_service_entry,
    WorkloadEntry: check_workload_entry,
    Service: check_service,
    Deployment: check_deployment,
    ServiceAccount: check_service_account,
    AuthorizationPolicy: check_authorization_policy,
    PeerAuthentication: check_peer_authentication,
    RequestAuthentication: check_request_authentication,
    Telemetry: check_telemetry,
    Sidecar: check_sidecar,
    Secret: check_secret,
    Gateway: check_gateway,
}

# Annotations that change how Istio treats an object; users may not set them.
_FORBIDDEN_ANNOTATIONS = frozenset(
    {
        "istio.io/alwaysReject",
        "internal.istio.io/parent-namespace",
        "internal.istio.io/parents",
    }
)


def validate_resource(resource: Resource) -> list[FieldProblem]:
    """Every semantic problem of one object, metadata first, in field order."""
    problems = Problems()
    _check_metadata(resource, problems)
    check = _KIND_CHECKS.get(type(resource))
    if check is not None:
        check(resource, problems)
    return problems.items


def _check_metadata(resource: Resource, problems: Problems) -> None:
    path = FieldPath("metadata")
    meta = resource.metadata
    if isinstance(resource, Service):
        name_problem = names.dns1035_label_error(meta.name)
    elif isinstance(resource, Namespace):
        name_problem = names.dns1123_label_error(meta.name)
    else:
        name_problem = names.dns1123_subdomain_error(meta.name)
    if name_problem:
        problems.add(path.field("name"), name_problem)
    if meta.namespace:
        namespace_problem = names.dns1123_label_error(meta.namespace)
        if namespace_problem:
            problems.add(path.field("namespace"), namespace_problem)
    check_labels(problems, path.field("labels"), meta.labels)
    for key in meta.annotations:
        annotation_problem = names.annotation_key_error(key)
        if annotation_problem:
            problems.add(path.field("annotations").key(key), annotation_problem)
        elif key in _FORBIDDEN_ANNOTATIONS:
            problems.add(path.field("annotations").key(key), "may not be set by users")
