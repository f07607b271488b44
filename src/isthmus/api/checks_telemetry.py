"""Telemetry checks, as Istio's webhook (ValidateTelemetry) and its CRD schema apply them,
plus what isthmus cannot honour yet: providers other than Istio's built-in defaults (it
has no meshConfig extensionProviders), CEL expressions (only CEL string literals are
accepted as label values; access log filters are refused), and label names Prometheus or
Envoy would refuse."""

from __future__ import annotations

import re

from isthmus.api import names
from isthmus.api.checks_common import NOT_SUPPORTED, check_range, check_workload_selector
from isthmus.api.errors import FieldPath, Problems, short_repr
from isthmus.api.telemetry import (
    ISTIO_METRIC_LABELS,
    AccessLogging,
    CustomTag,
    Metrics,
    ProviderRef,
    TagOperation,
    TagOverride,
    Telemetry,
    Tracing,
)

# The one provider each section accepts: Istio's built-in default for it.
TRACING_PROVIDER = "zipkin"
ACCESS_LOG_PROVIDER = "envoy"  # Istio's built-in file access log provider
METRICS_PROVIDER = "prometheus"

# Prometheus' label name syntax; names starting with "__" are reserved for its own use.
_PROMETHEUS_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# Prometheus' bucket label: a histogram's own series carry it.
_HISTOGRAM_BUCKET_LABEL = "le"


def check_telemetry(telemetry: Telemetry, problems: Problems) -> None:
    spec = telemetry.spec
    path = FieldPath("spec")
    if spec.selector is not None:
        here = path.field("selector").field("matchLabels")
        check_workload_selector(problems, here, spec.selector.match_labels)
    for position, tracing in enumerate(spec.tracing):
        _check_tracing(problems, path.field("tracing").index(position), tracing)
    for position, logging in enumerate(spec.access_logging):
        _check_access_logging(problems, path.field("accessLogging").index(position), logging)
    for position, metrics in enumerate(spec.metrics):
        _check_metrics(problems, path.field("metrics").index(position), metrics)


def cel_string_literal(value: str) -> str | None:
    """The text of `value` when it is one CEL string literal ('text', "text", their raw
    r'...' and triple-quoted forms, with CEL's escapes), else None.

    Istio's tagOverrides values are CEL expressions; a string literal is the one kind
    whose value is known without evaluating anything."""
    text = value.strip(" \t\n\r\f")
    raw = text[:1] in ("r", "R")
    if raw:
        text = text[1:]
    quote = next((q for q in ('"""', "'''", '"', "'") if text.startswith(q)), None)
    if quote is None:
        return None
    out: list[str] = []
    position = len(quote)
    while position < len(text):
        if text.startswith(quote, position):
            # The first closing quote ends the literal; anything after it is more CEL.
            return "".join(out) if position + len(quote) == len(text) else None
        char = text[position]
        if len(quote) == 1 and char in "\n\r":
            return None
        if char == "\\" and not raw:
            decoded = _cel_escape(text, position)
            if decoded is None:
                return None
            out.append(decoded[0])
            position = decoded[1]
            continue
        out.append(char)
        position += 1
    return None  # never closed


_CEL_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    '"': '"',
    "'": "'",
    "\\": "\\",
    "?": "?",
    "`": "`",
}
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def _cel_escape(text: str, start: int) -> tuple[str, int] | None:
    """CEL's escape at text[start] (a backslash): its character and the position after."""
    kind = text[start + 1 : start + 2]
    if kind in _CEL_SIMPLE_ESCAPES:
        return _CEL_SIMPLE_ESCAPES[kind], start + 2
    if kind in ("x", "X", "u", "U"):
        width = {"x": 2, "X": 2, "u": 4, "U": 8}[kind]
        digits = text[start + 2 : start + 2 + width]
        if len(digits) != width or not set(digits) <= _HEX_DIGITS:
            return None
        code = int(digits, 16)
        if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            return None
        return chr(code), start + 2 + width
    digits = text[start + 1 : start + 4]
    if len(digits) == 3 and digits[0] in "0123" and set(digits[1:]) <= set("01234567"):
        return chr(int(digits, 8)), start + 4
    return None


def metric_label_error(name: str) -> str | None:
    """Istio's standard label names, or a new label Prometheus (and the bucket label of
    histograms) leaves free."""
    if name in ISTIO_METRIC_LABELS:
        return None
    if name == "":
        return "label name must not be empty"
    if _PROMETHEUS_LABEL.fullmatch(name) is None:
        return (
            f"label name {short_repr(name)} is neither one of Istio's standard labels nor a "
            "valid Prometheus label name (letters, digits and _, not starting with a digit)"
        )
    if name.startswith("__"):
        return f"label name {short_repr(name)}: names starting with __ are reserved by Prometheus"
    if name == _HISTOGRAM_BUCKET_LABEL:
        return 'label name "le" is the bucket label of Prometheus histograms'
    return None


def _check_tracing(problems: Problems, path: FieldPath, tracing: Tracing) -> None:
    _check_providers(problems, path.field("providers"), tracing.providers, TRACING_PROVIDER)
    check_range(
        problems, path.field("randomSamplingPercentage"), tracing.random_sampling_percentage, 0, 100
    )
    for name, tag in tracing.custom_tags.items():
        _check_custom_tag(problems, path.field("customTags").key(name), name, tag)


def _check_custom_tag(problems: Problems, path: FieldPath, name: str, tag: CustomTag) -> None:
    if name == "":
        problems.add(path, "tag name must not be empty")
    chosen = [
        field
        for field, value in (
            ("literal", tag.literal),
            ("environment", tag.environment),
            ("header", tag.header),
        )
        if value is not None
    ]
    if len(chosen) > 1:
        problems.add(
            path, f"set only one of literal, environment and header (found {', '.join(chosen)})"
        )
        return
    if not chosen:
        problems.add(path, "set one of literal, environment and header")
        return
    if tag.literal is not None and tag.literal.value == "":
        problems.add(path.field("literal").field("value"), "must not be empty")
    if tag.environment is not None and tag.environment.name == "":
        problems.add(path.field("environment").field("name"), "must not be empty")
    if tag.header is not None:
        problem = names.header_name_error(tag.header.name)
        if problem:
            problems.add(path.field("header").field("name"), problem)


def _check_access_logging(problems: Problems, path: FieldPath, logging: AccessLogging) -> None:
    _check_providers(problems, path.field("providers"), logging.providers, ACCESS_LOG_PROVIDER)
    if logging.filter is not None:
        problems.add(
            path.field("filter").field("expression"),
            f"{NOT_SUPPORTED}: isthmus does not evaluate CEL filter expressions",
        )


def _check_metrics(problems: Problems, path: FieldPath, metrics: Metrics) -> None:
    _check_providers(problems, path.field("providers"), metrics.providers, METRICS_PROVIDER)
    for position, override in enumerate(metrics.overrides):
        tags = path.field("overrides").index(position).field("tagOverrides")
        for name, tag in override.tag_overrides.items():
            _check_tag_override(problems, tags.key(name), name, tag)


def _check_tag_override(problems: Problems, path: FieldPath, name: str, tag: TagOverride) -> None:
    problem = metric_label_error(name)
    if problem:
        problems.add(path, problem)
    value = path.field("value")
    if tag.operation is TagOperation.REMOVE:
        if tag.value is not None:
            problems.add(value, "must not be set when operation is REMOVE")
        return
    if not tag.value:
        problems.add(value, "must be set when operation is UPSERT")
        return
    literal = cel_string_literal(tag.value)
    if literal is None:
        problems.add(
            value,
            "only string literals are supported yet: isthmus does not evaluate CEL, so quote "
            f"the text as a CEL string, e.g. value: \"'canary'\" (got {short_repr(tag.value)})",
        )
    elif literal == "":
        problems.add(
            value,
            "an empty label value is the same as no label to Prometheus; use operation: REMOVE",
        )


def _check_providers(
    problems: Problems, path: FieldPath, providers: list[ProviderRef], default: str
) -> None:
    """Istio: every name set. isthmus: only the section's built-in default, once."""
    unsupported = (
        f"isthmus has no meshConfig extensionProviders; use {default} (Istio's built-in "
        "provider) or leave providers out"
    )
    fine = True
    for position, provider in enumerate(providers):
        here = path.index(position).field("name")
        if provider.name.strip() == "":
            problems.add(here, "must not be empty")
            fine = False
        elif provider.name != default:
            problems.add(
                here, f"provider {short_repr(provider.name)} is not supported yet: {unsupported}"
            )
            fine = False
    if fine and len(providers) > 1:
        problems.add(path, f"more than one provider is not supported yet: {unsupported}")
