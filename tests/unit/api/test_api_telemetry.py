"""Telemetry: Istio's documentation examples load, each refusal is one line naming its
field, and tagOverrides values are CEL string literals."""

from __future__ import annotations

import pytest
from _apihelp import document, load, load_errors

from isthmus.api.checks_telemetry import cel_string_literal, metric_label_error
from isthmus.api.registry import lookup, resolve_kind_name
from isthmus.api.telemetry import (
    ISTIO_METRIC_LABELS,
    IstioMetric,
    TagOperation,
    Telemetry,
    WorkloadMode,
)
from isthmus.pilot.telemetry.labels import (
    DestinationService,
    destination_reporter,
    http_labels,
    source_reporter,
    tcp_labels,
)

PREFIX = "app.yaml:1 Telemetry production/reviews: "

# Istio's documentation (reference/config/telemetry and the observability tasks), verbatim.
DISABLE_ACCESS_LOGS_FOR_A_NAMESPACE = """\
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata:
  name: namespace-no-log
  namespace: foo
spec:
  # no selector specified, applies to all workloads in the namespace
  accessLogging:
  - disabled: true
"""

SAMPLE_TEN_PERCENT = """\
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata:
  name: mesh-default
  namespace: istio-system
spec:
  # no selector specified, applies to all workloads
  tracing:
  - randomSamplingPercentage: 10.00
"""

CUSTOM_TAG_LITERAL = """\
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata:
  name: mesh-default
  namespace: istio-system
spec:
  # no selector specified, applies to all workloads
  tracing:
  - randomSamplingPercentage: 10.00
    customTags:
      my_new_foo_tag:
        literal:
          value: "foo"
"""

REMOVE_RESPONSE_CODE = """\
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata:
  name: remove-response-code
  namespace: foo
spec:
  selector:
    matchLabels:
      service.istio.io/canonical-name: bar
  metrics:
  - providers:
    - name: prometheus
    overrides:
    - match:
        metric: REQUEST_COUNT
      tagOverrides:
        response_code:
          operation: REMOVE
    - match:
        metric: REQUEST_DURATION
      tagOverrides:
        response_code:
          operation: REMOVE
"""

DISABLE_CLIENT_REQUEST_COUNT = """\
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata:
  name: remove-client
  namespace: istio-system
spec:
  metrics:
    - providers:
        - name: prometheus
      overrides:
        - match:
            metric: REQUEST_COUNT
            mode: CLIENT
          disabled: true
"""

ENABLE_ACCESS_LOGS = """\
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata:
  name: mesh-default
  namespace: istio-system
spec:
  accessLogging:
    - providers:
      - name: envoy
"""


def telemetry(spec: str, api_version: str = "telemetry.istio.io/v1") -> str:
    return document("Telemetry", spec, api_version=api_version)


def loaded(text: str) -> Telemetry:
    (one,) = load(text)
    assert isinstance(one.resource, Telemetry)
    return one.resource


@pytest.mark.parametrize("api_version", ["telemetry.istio.io/v1", "telemetry.istio.io/v1alpha1"])
def test_both_api_versions_load_the_docs_examples(api_version: str) -> None:
    for example in (
        DISABLE_ACCESS_LOGS_FOR_A_NAMESPACE,
        SAMPLE_TEN_PERCENT,
        CUSTOM_TAG_LITERAL,
        REMOVE_RESPONSE_CODE,
        DISABLE_CLIENT_REQUEST_COUNT,
        ENABLE_ACCESS_LOGS,
    ):
        resource = loaded(example.replace("telemetry.istio.io/v1", api_version))
        assert resource.api_version == api_version


def test_access_logs_disabled_for_a_namespace() -> None:
    (one,) = load(DISABLE_ACCESS_LOGS_FOR_A_NAMESPACE)

    assert one.key == ("Telemetry", "foo", "namespace-no-log")
    assert isinstance(one.resource, Telemetry)
    spec = one.resource.spec
    assert spec.selector is None
    (logging,) = spec.access_logging
    assert logging.disabled is True
    assert logging.providers == [] and logging.match is None and logging.filter is None
    assert spec.tracing == [] and spec.metrics == []


def test_sampling_percentage_and_a_literal_custom_tag() -> None:
    (tracing,) = loaded(CUSTOM_TAG_LITERAL).spec.tracing

    assert tracing.random_sampling_percentage == 10.0
    assert tracing.disable_span_reporting is None
    tag = tracing.custom_tags["my_new_foo_tag"]
    assert tag.literal is not None and tag.literal.value == "foo"
    assert tag.environment is None and tag.header is None


def test_a_tag_removed_from_some_metrics_of_selected_workloads() -> None:
    spec = loaded(REMOVE_RESPONSE_CODE).spec

    assert spec.selector is not None
    assert spec.selector.match_labels == {"service.istio.io/canonical-name": "bar"}
    (metrics,) = spec.metrics
    assert [p.name for p in metrics.providers] == ["prometheus"]
    assert [o.match.metric for o in metrics.overrides if o.match] == [
        IstioMetric.REQUEST_COUNT,
        IstioMetric.REQUEST_DURATION,
    ]
    for override in metrics.overrides:
        assert override.match is not None
        assert override.match.mode is WorkloadMode.CLIENT_AND_SERVER  # the proto's default
        tag = override.tag_overrides["response_code"]
        assert tag.operation is TagOperation.REMOVE and tag.value is None
        assert override.disabled is None


def test_request_count_disabled_at_the_client() -> None:
    (metrics,) = loaded(DISABLE_CLIENT_REQUEST_COUNT).spec.metrics

    (override,) = metrics.overrides
    assert override.match is not None
    assert (override.match.metric, override.match.mode) == (
        IstioMetric.REQUEST_COUNT,
        WorkloadMode.CLIENT,
    )
    assert override.disabled is True and override.tag_overrides == {}


def test_every_supported_field_loads() -> None:
    spec = """
selector: {matchLabels: {app: reviews}}
tracing:
- match: {mode: SERVER}
  providers: [{name: zipkin}]
  randomSamplingPercentage: 100
  disableSpanReporting: false
  customTags:
    env: {environment: {name: POD_NAME, defaultValue: unknown}}
    user: {header: {name: x-user-id, defaultValue: anonymous}}
    cluster: {literal: {value: local}}
accessLogging:
- match: {mode: CLIENT}
  providers: [{name: envoy}]
  disabled: false
metrics:
- providers: [{name: prometheus}]
  overrides:
  - match: {metric: ALL_METRICS, mode: SERVER}
    disabled: false
    tagOverrides:
      destination_version: {operation: UPSERT, value: "'canary'"}
      team: {value: '"storefront"'}
      response_flags: {operation: REMOVE}
"""
    resource = loaded(telemetry(spec))

    (tracing,) = resource.spec.tracing
    assert tracing.match is not None and tracing.match.mode is WorkloadMode.SERVER
    assert tracing.random_sampling_percentage == 100.0
    assert tracing.disable_span_reporting is False
    env = tracing.custom_tags["env"].environment
    assert env is not None and (env.name, env.default_value) == ("POD_NAME", "unknown")
    header = tracing.custom_tags["user"].header
    assert header is not None and (header.name, header.default_value) == ("x-user-id", "anonymous")
    (logging,) = resource.spec.access_logging
    assert logging.match is not None and logging.match.mode is WorkloadMode.CLIENT
    assert logging.disabled is False
    (override,) = resource.spec.metrics[0].overrides
    tags = override.tag_overrides
    assert tags["destination_version"].value == "'canary'"
    assert tags["team"].operation is TagOperation.UPSERT  # the proto's default
    assert tags["response_flags"].operation is TagOperation.REMOVE


def test_empty_selectors_take_istios_defaults() -> None:
    spec = """
tracing: [{match: {}}]
accessLogging: [{match: {}}]
metrics: [{overrides: [{match: {}}]}]
"""
    resource = loaded(telemetry(spec))

    assert resource.spec.tracing[0].match is not None
    assert resource.spec.tracing[0].match.mode is WorkloadMode.CLIENT_AND_SERVER
    assert resource.spec.access_logging[0].match is not None
    assert resource.spec.access_logging[0].match.mode is WorkloadMode.CLIENT_AND_SERVER
    match = resource.spec.metrics[0].overrides[0].match
    assert match is not None and match.metric is None  # every standard metric
    assert match.mode is WorkloadMode.CLIENT_AND_SERVER


def test_an_empty_spec_is_a_telemetry_that_changes_nothing() -> None:
    resource = loaded(telemetry("{}"))

    spec = resource.spec
    assert (spec.tracing, spec.access_logging, spec.metrics) == ([], [], [])


def test_registered_with_istio_names() -> None:
    info = lookup("telemetry.istio.io/v1alpha1", "Telemetry")

    assert info.model is Telemetry and info.namespaced
    assert info.preferred_api_version == "telemetry.istio.io/v1"
    for spelling in ("telemetry", "telemetries", "Telemetry", "telemetries.telemetry.istio.io"):
        assert resolve_kind_name(spelling) is info


def test_every_standard_label_may_be_removed_or_overridden() -> None:
    tags = "\n".join(f"      {name}: {{value: \"'x'\"}}" for name in ISTIO_METRIC_LABELS)

    resource = loaded(telemetry(f"metrics:\n- overrides:\n  - tagOverrides:\n{tags}\n"))

    assert set(resource.spec.metrics[0].overrides[0].tag_overrides) == set(ISTIO_METRIC_LABELS)


def test_the_standard_labels_are_the_ones_pilot_emits() -> None:
    """api keeps its own copy (api imports nothing of pilot); this keeps the two equal."""
    service = DestinationService()
    emitted: set[str] = set()
    for reporter in (source_reporter(), destination_reporter(service, mutual_tls=True)):
        emitted |= set(http_labels(reporter, grpc=True)) | set(tcp_labels(reporter))

    assert set(ISTIO_METRIC_LABELS) == emitted
    assert len(ISTIO_METRIC_LABELS) == len(emitted)
    assert list(http_labels(source_reporter(), grpc=True)) == list(ISTIO_METRIC_LABELS)


def tag(body: str) -> str:
    return "metrics:\n- overrides:\n  - tagOverrides:\n      " + body + "\n"


TAGS = "spec.metrics[0].overrides[0].tagOverrides"

CASES = {
    "target-ref": (
        "targetRef: {kind: Gateway, name: ingress}",
        "spec.targetRef: not supported yet",
    ),
    "target-refs": (
        "targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: ingress}]",
        "spec.targetRefs: not supported yet",
    ),
    "selector-wildcard": (
        "selector: {matchLabels: {app: 'web-*'}}",
        "spec.selector.matchLabels[app]: wildcards are not supported in selectors",
    ),
    "selector-bad-label": (
        "selector: {matchLabels: {'a b': x}}",
        'spec.selector.matchLabels[a b]: invalid label key "a b"',
    ),
    "sampling-above-100": (
        "tracing: [{randomSamplingPercentage: 100.5}]",
        "spec.tracing[0].randomSamplingPercentage: must be between 0 and 100",
    ),
    "sampling-negative": (
        "tracing: [{randomSamplingPercentage: -1}]",
        "spec.tracing[0].randomSamplingPercentage: must be between 0 and 100",
    ),
    "sampling-not-finite": (
        "tracing: [{randomSamplingPercentage: .nan}]",
        "spec.tracing[0].randomSamplingPercentage: must be a finite number",
    ),
    "sampling-not-a-number": (
        "tracing: [{randomSamplingPercentage: '10'}]",
        'spec.tracing[0].randomSamplingPercentage: must be a number (got "10")',
    ),
    "use-request-id": (
        "tracing: [{useRequestIdForTraceSampling: false}]",
        "spec.tracing[0].useRequestIdForTraceSampling: not supported yet",
    ),
    "enable-istio-tags": (
        "tracing: [{enableIstioTags: false}]",
        "spec.tracing[0].enableIstioTags: not supported yet",
    ),
    "disable-context-propagation": (
        "tracing: [{disableContextPropagation: true}]",
        "spec.tracing[0].disableContextPropagation: not supported yet",
    ),
    "tracing-mode-unknown": (
        "tracing: [{match: {mode: INBOUND}}]",
        "spec.tracing[0].match.mode: must be one of CLIENT_AND_SERVER, CLIENT, SERVER "
        '(got "INBOUND")',
    ),
    "tracing-provider-other": (
        "tracing: [{providers: [{name: otel}]}]",
        'spec.tracing[0].providers[0].name: provider "otel" is not supported yet: isthmus has '
        "no meshConfig extensionProviders; use zipkin (Istio's built-in provider) or leave "
        "providers out",
    ),
    "tracing-provider-empty": (
        "tracing: [{providers: [{name: ''}]}]",
        "spec.tracing[0].providers[0].name: must not be empty",
    ),
    "tracing-provider-missing-name": (
        "tracing: [{providers: [{}]}]",
        "spec.tracing[0].providers[0].name: is required",
    ),
    "tracing-two-providers": (
        "tracing: [{providers: [{name: zipkin}, {name: zipkin}]}]",
        "spec.tracing[0].providers: more than one provider is not supported yet: isthmus has "
        "no meshConfig extensionProviders; use zipkin (Istio's built-in provider) or leave "
        "providers out",
    ),
    "custom-tag-none": (
        "tracing: [{customTags: {team: {}}}]",
        "spec.tracing[0].customTags[team]: set one of literal, environment and header",
    ),
    "custom-tag-two": (
        "tracing: [{customTags: {team: {literal: {value: a}, header: {name: x-team}}}}]",
        "spec.tracing[0].customTags[team]: set only one of literal, environment and header "
        "(found literal, header)",
    ),
    "custom-tag-name-empty": (
        "tracing: [{customTags: {'': {literal: {value: a}}}}]",
        "spec.tracing[0].customTags[]: tag name must not be empty",
    ),
    "custom-tag-literal-empty": (
        "tracing: [{customTags: {team: {literal: {value: ''}}}}]",
        "spec.tracing[0].customTags[team].literal.value: must not be empty",
    ),
    "custom-tag-environment-empty": (
        "tracing: [{customTags: {pod: {environment: {name: ''}}}}]",
        "spec.tracing[0].customTags[pod].environment.name: must not be empty",
    ),
    "custom-tag-header-invalid": (
        "tracing: [{customTags: {user: {header: {name: 'x user'}}}}]",
        'spec.tracing[0].customTags[user].header.name: header name "x user" is not a valid '
        "HTTP header name",
    ),
    "custom-tag-formatter": (
        "tracing: [{customTags: {sni: {formatter: {value: '%REQUESTED_SERVER_NAME%'}}}}]",
        "spec.tracing[0].customTags[sni].formatter: not supported yet",
    ),
    "access-log-provider-other": (
        "accessLogging: [{providers: [{name: otel}]}]",
        'spec.accessLogging[0].providers[0].name: provider "otel" is not supported yet: '
        "isthmus has no meshConfig extensionProviders; use envoy (Istio's built-in provider) "
        "or leave providers out",
    ),
    "access-log-filter": (
        "accessLogging: [{filter: {expression: 'response.code >= 400'}}]",
        "spec.accessLogging[0].filter.expression: not supported yet: isthmus does not "
        "evaluate CEL filter expressions",
    ),
    "access-log-mode-unknown": (
        "accessLogging: [{match: {mode: BOTH}}]",
        "spec.accessLogging[0].match.mode: must be one of CLIENT_AND_SERVER, CLIENT, SERVER "
        '(got "BOTH")',
    ),
    "access-log-log-format": (
        "accessLogging: [{logFormat: {body: {stringValue: x}}}]",
        "spec.accessLogging[0].logFormat: unknown field",
    ),
    "metrics-provider-other": (
        "metrics: [{providers: [{name: stackdriver}]}]",
        'spec.metrics[0].providers[0].name: provider "stackdriver" is not supported yet: '
        "isthmus has no meshConfig extensionProviders; use prometheus (Istio's built-in "
        "provider) or leave providers out",
    ),
    "metrics-reporting-interval": (
        "metrics: [{reportingInterval: 5s}]",
        "spec.metrics[0].reportingInterval: not supported yet",
    ),
    "metrics-custom-metric": (
        "metrics: [{overrides: [{match: {customMetric: my_metric}}]}]",
        "spec.metrics[0].overrides[0].match.customMetric: not supported yet",
    ),
    "metrics-unknown-metric": (
        "metrics: [{overrides: [{match: {metric: REQUEST_BYTES}}]}]",
        "spec.metrics[0].overrides[0].match.metric: must be one of ALL_METRICS, "
        "REQUEST_COUNT, REQUEST_DURATION, REQUEST_SIZE, RESPONSE_SIZE, TCP_OPENED_CONNECTIONS, "
        "TCP_CLOSED_CONNECTIONS, TCP_SENT_BYTES, TCP_RECEIVED_BYTES, GRPC_REQUEST_MESSAGES, "
        'GRPC_RESPONSE_MESSAGES (got "REQUEST_BYTES")',
    ),
    "tag-operation-unknown": (
        tag("response_code: {operation: DELETE}"),
        f'{TAGS}[response_code].operation: must be one of UPSERT, REMOVE (got "DELETE")',
    ),
    "tag-upsert-without-value": (
        tag("team: {operation: UPSERT}"),
        f"{TAGS}[team].value: must be set when operation is UPSERT",
    ),
    "tag-upsert-empty-value": (
        tag("team: {value: ''}"),
        f"{TAGS}[team].value: must be set when operation is UPSERT",
    ),
    "tag-remove-with-value": (
        tag("response_code: {operation: REMOVE, value: oops}"),
        f"{TAGS}[response_code].value: must not be set when operation is REMOVE",
    ),
    "tag-value-cel-expression": (
        tag("request_host: {value: request.host}"),
        f"{TAGS}[request_host].value: only string literals are supported yet: isthmus does not "
        "evaluate CEL, so quote the text as a CEL string, e.g. value: \"'canary'\" "
        '(got "request.host")',
    ),
    "tag-value-unquoted-text": (
        tag("team: {value: storefront}"),
        f"{TAGS}[team].value: only string literals are supported yet: isthmus does not "
        "evaluate CEL, so quote the text as a CEL string, e.g. value: \"'canary'\" "
        '(got "storefront")',
    ),
    "tag-value-concatenation": (
        tag("""team: {value: "'a' + 'b'"}"""),
        f"{TAGS}[team].value: only string literals are supported yet: isthmus does not "
        "evaluate CEL, so quote the text as a CEL string, e.g. value: \"'canary'\" "
        "(got \"'a' + 'b'\")",
    ),
    "tag-value-empty-literal": (
        tag("""team: {value: "''"}"""),
        f"{TAGS}[team].value: an empty label value is the same as no label to Prometheus; "
        "use operation: REMOVE",
    ),
    "tag-name-empty": (
        tag("'': {operation: REMOVE}"),
        f"{TAGS}[]: label name must not be empty",
    ),
    "tag-name-not-prometheus": (
        tag("request-host: {value: \"'x'\"}"),
        f'{TAGS}[request-host]: label name "request-host" is neither one of Istio\'s standard '
        "labels nor a valid Prometheus label name (letters, digits and _, not starting with "
        "a digit)",
    ),
    "tag-name-digit-first": (
        tag("1st: {operation: REMOVE}"),
        f'{TAGS}[1st]: label name "1st" is neither one of Istio\'s standard labels nor a '
        "valid Prometheus label name (letters, digits and _, not starting with a digit)",
    ),
    "tag-name-reserved": (
        tag("__name__: {value: \"'x'\"}"),
        f'{TAGS}[__name__]: label name "__name__": names starting with __ are reserved by '
        "Prometheus",
    ),
    "tag-name-bucket": (
        tag("le: {value: \"'x'\"}"),
        f'{TAGS}[le]: label name "le" is the bucket label of Prometheus histograms',
    ),
    "unknown-field": (
        "tracing: [{randomSamplingPercent: 10}]",
        "spec.tracing[0].randomSamplingPercent: unknown field (did you mean "
        "randomSamplingPercentage?)",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_refusal_is_one_line_naming_the_field(case: str) -> None:
    spec, expected = CASES[case]

    assert load_errors(telemetry(spec)) == [PREFIX + expected]


def test_problems_of_every_section_are_all_reported_in_field_order() -> None:
    spec = """
metrics: [{providers: [{name: stackdriver}]}]
tracing: [{randomSamplingPercentage: 200}, {providers: [{name: ''}]}]
accessLogging: [{filter: {expression: 'true'}}]
"""
    assert [line.removeprefix(PREFIX).split(":")[0] for line in load_errors(telemetry(spec))] == [
        "spec.tracing[0].randomSamplingPercentage",
        "spec.tracing[1].providers[0].name",
        "spec.accessLogging[0].filter.expression",
        "spec.metrics[0].providers[0].name",
    ]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("'canary'", "canary"),
        ('"canary"', "canary"),
        ("  'v2'  ", "v2"),
        ("'it\\'s'", "it's"),
        ('"say \\"hi\\""', 'say "hi"'),
        ("'a\\\\b'", "a\\b"),
        ("'tab\\there'", "tab\there"),
        ("'\\x41\\u00e9\\U0001F600\\101'", "Aé😀A"),
        ("r'C:\\path'", "C:\\path"),
        ('R"raw \\n"', "raw \\n"),
        ("'''multi\nline'''", "multi\nline"),
        ('"""has "quotes" inside"""', 'has "quotes" inside'),
        ("r'''raw\\'''", "raw\\"),
        ("'\"'", '"'),
        ("''", ""),
    ],
)
def test_cel_string_literals_give_their_text(value: str, text: str) -> None:
    assert cel_string_literal(value) == text


@pytest.mark.parametrize(
    "value",
    [
        "",
        "canary",
        "request.host",
        "string(destination.port)",
        "'a' + 'b'",
        "'a''b'",
        "'unclosed",
        "'mixed\"",
        "'line\nbreak'",
        "'bad \\q escape'",
        "'\\x4'",
        "'\\uD800'",
        "'\\U00110000'",
        "'\\400'",
        "b'bytes'",
        "'''a''''",
        "r'a'b'",
        "upstream_peer.labels['app'].value",
        "'a' == 'a' ? 'x' : 'y'",
    ],
)
def test_anything_but_one_string_literal_is_not_a_literal(value: str) -> None:
    assert cel_string_literal(value) is None


def test_label_names_follow_prometheus() -> None:
    assert metric_label_error("request_host") is None
    assert metric_label_error("_private") is None
    assert metric_label_error("Team2") is None
    for name in ISTIO_METRIC_LABELS:
        assert metric_label_error(name) is None
    assert metric_label_error("team.name") is not None
    assert metric_label_error("équipe") is not None
