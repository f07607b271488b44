"""load_documents and parse_resource: documents, kind List, namespaces, bodies, keys."""

from __future__ import annotations

import json

import pytest
from _apihelp import document, load, load_errors

from isthmus.api import ApiError, parse_resource
from isthmus.api.networking import VirtualService

VIRTUAL_SERVICE = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
"""


def test_namespace_defaults_to_the_given_namespace() -> None:
    (obj,) = load(VIRTUAL_SERVICE, default_namespace="staging")

    assert obj.key == ("VirtualService", "staging", "reviews")
    assert obj.resource.metadata.namespace == "staging"
    assert obj.body["metadata"] == {"name": "reviews", "namespace": "staging"}


def test_namespace_defaults_to_default() -> None:
    (obj,) = load(VIRTUAL_SERVICE)

    assert obj.key == ("VirtualService", "default", "reviews")


@pytest.mark.parametrize("written", ['""', "null", "~"])
def test_empty_namespace_is_defaulted(written: str) -> None:
    text = VIRTUAL_SERVICE.replace(
        "  name: reviews\n", f"  name: reviews\n  namespace: {written}\n"
    )

    (obj,) = load(text, default_namespace="staging")

    assert obj.key == ("VirtualService", "staging", "reviews")
    assert obj.body["metadata"]["namespace"] == "staging"


def test_explicit_namespace_wins_over_the_default() -> None:
    text = VIRTUAL_SERVICE.replace("  name: reviews\n", "  name: reviews\n  namespace: prod\n")

    (obj,) = load(text, default_namespace="staging")

    assert obj.key == ("VirtualService", "prod", "reviews")


def test_namespace_kind_is_cluster_scoped() -> None:
    (obj,) = load("apiVersion: v1\nkind: Namespace\nmetadata: {name: prod, namespace: other}\n")

    assert obj.key == ("Namespace", "", "prod")
    assert obj.resource.metadata.namespace is None
    assert obj.body == {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod"}}


def test_body_is_the_document_as_written_plus_namespace_without_status() -> None:
    text = VIRTUAL_SERVICE + "  exportTo: null\nstatus:\n  conditions: []\n"

    (obj,) = load(text)

    assert obj.body == {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "reviews", "namespace": "default"},
        "spec": {
            "hosts": ["reviews"],
            "http": [{"route": [{"destination": {"host": "reviews"}}]}],
            "exportTo": None,
        },
    }
    json.dumps(obj.body)


def test_multi_document_lines_and_indexes_skip_empty_documents() -> None:
    text = (
        "# header\n---\n---\n"
        + VIRTUAL_SERVICE
        + "---\n# nothing here\n---\n"
        + ("apiVersion: v1\nkind: Namespace\nmetadata: {name: prod}\n")
    )

    vs, namespace = load(text)

    assert (vs.line, vs.index) == (4, 1)
    assert (namespace.line, namespace.index) == (16, 3)
    assert vs.source == namespace.source == "app.yaml"


def test_empty_input_loads_nothing() -> None:
    assert load("") == []
    assert load(b"") == []
    assert load("# only a comment\n---\n") == []


def test_kind_list_expands_its_items_with_their_own_lines() -> None:
    text = (
        "apiVersion: v1\n"
        "kind: List\n"
        "items:\n"
        "- apiVersion: v1\n"
        "  kind: Namespace\n"
        "  metadata: {name: prod}\n"
        "- apiVersion: v1\n"
        "  kind: ServiceAccount\n"
        "  metadata: {name: reviews}\n"
    )

    namespace, account = load(text, default_namespace="prod")

    assert namespace.key == ("Namespace", "", "prod")
    assert account.key == ("ServiceAccount", "prod", "reviews")
    assert (namespace.line, namespace.index) == (4, 0)
    assert (account.line, account.index) == (7, 0)


def test_kind_list_item_problems_name_the_item() -> None:
    text = (
        "apiVersion: v1\nkind: List\nitems:\n"
        "- apiVersion: v1\n  kind: ServiceAccount\n  metadata: {name: ok}\n"
        "- apiVersion: v1\n  metadata: {name: no-kind}\n"
        "- apiVersion: v1\n  kind: List\n  items: []\n"
    )

    assert load_errors(text) == [
        "app.yaml:7 document 1 items[1]: kind: is required",
        "app.yaml:9 List in document 1 items[2]: a List cannot contain another List",
    ]


def test_empty_kind_list_loads_nothing() -> None:
    assert load("apiVersion: v1\nkind: List\nitems: []\n") == []


def test_same_name_in_different_namespaces_is_fine() -> None:
    text = (
        VIRTUAL_SERVICE
        + "---\n"
        + VIRTUAL_SERVICE.replace("name: reviews\n", "name: reviews\n  namespace: b\n", 1)
    )

    first, second = load(text)

    assert first.key != second.key


def test_server_set_metadata_from_get_output_is_accepted() -> None:
    text = VIRTUAL_SERVICE.replace(
        "  name: reviews\n",
        "  name: reviews\n  uid: 6d8f\n  resourceVersion: '42'\n  generation: 3\n"
        "  creationTimestamp: 2024-01-01T00:00:00Z\n  managedFields: []\n",
    )

    (obj,) = load(text)

    assert obj.resource.metadata.resource_version == "42"
    assert obj.resource.metadata.creation_timestamp == "2024-01-01T00:00:00Z"


def test_parse_resource_round_trips_a_stored_body() -> None:
    (obj,) = load(VIRTUAL_SERVICE)

    resource = parse_resource(json.loads(json.dumps(obj.body)))

    assert isinstance(resource, VirtualService)
    assert resource == obj.resource


def test_parse_resource_reports_problems_as_lines() -> None:
    (obj,) = load(VIRTUAL_SERVICE)
    body = json.loads(json.dumps(obj.body))
    body["spec"]["http"][0]["route"][0]["weight"] = 101

    with pytest.raises(ApiError) as raised:
        parse_resource(body, source="store")

    assert raised.value.errors == [
        "store VirtualService default/reviews: spec.http[0].route[0].weight: must be between 0 "
        "and 100"
    ]


def test_parse_resource_rejects_unknown_kinds() -> None:
    with pytest.raises(ApiError) as raised:
        parse_resource({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}})

    assert raised.value.errors == [
        "<stored> Pod default/p: unknown kind Pod (v1); isthmus accepts AuthorizationPolicy, "
        "Deployment, DestinationRule, Gateway, Namespace, PeerAuthentication, "
        "RequestAuthentication, Secret, Service, ServiceAccount, ServiceEntry, Sidecar, Telemetry, "
        "VirtualService, WorkloadEntry"
    ]


def test_timestamps_and_version_like_values_stay_strings() -> None:
    text = document(
        "Service",
        "selector: {app: reviews, released: 2024-01-01}\nports: [{port: 80}]",
        api_version="v1",
    )

    (obj,) = load(text)

    assert obj.resource.spec.selector == {"app": "reviews", "released": "2024-01-01"}
    assert obj.body["spec"]["selector"]["released"] == "2024-01-01"


def test_error_label_uses_default_namespace_and_document_number() -> None:
    text = VIRTUAL_SERVICE + "---\n" + VIRTUAL_SERVICE.replace("reviews]", "revi_ews]")

    assert load_errors(text, default_namespace="qa") == [
        'app.yaml:11 VirtualService qa/reviews: spec.hosts[0]: domain name "revi_ews" is invalid: '
        'label "revi_ews" is invalid'
    ]
