"""AuthorizationPolicy checks, as Istio's webhook (ValidateAuthorizationPolicy and
pkg/config/security) applies them, plus "not supported yet" for what isthmus does not
translate: the CUSTOM action."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from isthmus.api import names
from isthmus.api.authorization import (
    DRY_RUN_ANNOTATION,
    AuthorizationAction,
    AuthorizationPolicy,
    Condition,
    Operation,
    Rule,
    Source,
    parse_go_bool,
)
from isthmus.api.checks_common import NOT_SUPPORTED, check_workload_selector
from isthmus.api.errors import FieldPath, Problems, short_repr
from isthmus.api.networking import WorkloadSelector

MAX_RULES = 512  # Istio's CRD: rules and from each hold at most 512 items
MAX_SERVICE_ACCOUNTS = 16
MAX_SERVICE_ACCOUNT_LENGTH = 320

_PORT = re.compile(r"[0-9]+")
# What a literal segment of a path template may hold: Envoy's uri_template literal (RFC 3986
# pchar without `*` and `=`). Istio also allows `=`, which Envoy then refuses.
_TEMPLATE_LITERAL = re.compile(r"[a-zA-Z0-9\-._~%!$&'()+,;:@]+")
_MATCH_ONE, _MATCH_ANY = "{*}", "{**}"
_REQUEST_AUTH_KEYS = frozenset(
    {"request.auth.principal", "request.auth.audiences", "request.auth.presenter"}
)
_MAP_KEY = re.compile(r"(?P<attribute>[^\[]+)\[(?P<name>[^\[\]]+)\]")
_CLAIMS_PREFIX = "request.auth.claims"
# One or more bracketed claim names: request.auth.claims[groups], ...claims[a][b] (nested).
_CLAIM_PATH = re.compile(r"(\[[^\[\]]+\])+")

ValueCheck = Callable[[str], str | None]


def check_authorization_policy(policy: AuthorizationPolicy, problems: Problems) -> None:
    spec = policy.spec
    path = FieldPath("spec")
    _check_dry_run(policy, problems)
    if spec.selector is not None:
        _check_selector(problems, path.field("selector").field("matchLabels"), spec.selector)
    if spec.action is AuthorizationAction.CUSTOM:
        problems.add(path.field("action"), f"CUSTOM is {NOT_SUPPORTED}")
    rules_path = path.field("rules")
    if spec.action is AuthorizationAction.DENY and not spec.rules:
        problems.add(
            rules_path,
            "a DENY policy without rules never matches; add an empty rule {} to deny every request",
        )
    if len(spec.rules) > MAX_RULES:
        problems.add(rules_path, f"at most {MAX_RULES} rules are allowed")
    namespace = policy.metadata.namespace or ""
    for position, rule in enumerate(spec.rules):
        _check_rule(problems, rules_path.index(position), rule, namespace)


def _check_selector(problems: Problems, path: FieldPath, selector: WorkloadSelector) -> None:
    check_workload_selector(problems, path, selector.match_labels)


def _check_dry_run(policy: AuthorizationPolicy, problems: Problems) -> None:
    """Istio: the annotation is a Go boolean and only ALLOW and DENY policies have one."""
    value = policy.metadata.annotations.get(DRY_RUN_ANNOTATION)
    if value is None:
        return
    here = FieldPath("metadata").field("annotations").key(DRY_RUN_ANNOTATION)
    action = policy.spec.action
    if action not in (AuthorizationAction.ALLOW, AuthorizationAction.DENY):
        problems.add(here, f"dry-run is only supported for action ALLOW or DENY (not {action})")
    elif parse_go_bool(value) is None:
        problems.add(here, f"must be true or false (got {short_repr(value)})")


def _check_rule(problems: Problems, path: FieldPath, rule: Rule, namespace: str) -> None:
    if len(rule.from_) > MAX_RULES:
        problems.add(path.field("from"), f"at most {MAX_RULES} sources are allowed")
    for position, entry in enumerate(rule.from_):
        here = path.field("from").index(position).field("source")
        if entry.source is None:
            problems.add(here, "is required")
        else:
            _check_source(problems, here, entry.source)
    for position, target in enumerate(rule.to):
        here = path.field("to").index(position).field("operation")
        if target.operation is None:
            problems.add(here, "is required")
        else:
            _check_operation(problems, here, target.operation)
    for position, condition in enumerate(rule.when):
        _check_condition(problems, path.field("when").index(position), condition, namespace)


def _check_source(problems: Problems, path: FieldPath, source: Source) -> None:
    lists = list(_lists(source))
    if not any(values for _, _, values in lists):
        problems.add(path, "must not be empty (set at least one field)")
        return
    accounts = source.service_accounts or source.not_service_accounts
    peers = source.principals or source.not_principals
    if accounts and (peers or source.namespaces or source.not_namespaces):
        problems.add(path, "serviceAccounts cannot be set with namespaces or principals")
    for name, alias, values in lists:
        here = path.field(alias)
        _each_value(problems, here, values, _ip_error if name.endswith("ip_blocks") else None)
        if name.endswith("service_accounts"):
            _check_service_accounts(problems, here, values)


def _check_operation(problems: Problems, path: FieldPath, operation: Operation) -> None:
    lists = list(_lists(operation))
    if not any(values for _, _, values in lists):
        problems.add(path, "must not be empty (set at least one field)")
        return
    for name, alias, values in lists:
        _each_value(problems, path.field(alias), values, _OPERATION_CHECKS.get(name))


def _check_condition(
    problems: Problems, path: FieldPath, condition: Condition, namespace: str
) -> None:
    key = condition.key
    if key == "":
        problems.add(path.field("key"), "must not be empty")
        return
    if not condition.values and not condition.not_values:
        problems.add(path, "set at least one of values and notValues")
        return
    key_problem, value_check = _attribute_rule(key)
    if key_problem is not None:
        problems.add(path.field("key"), key_problem)
        return
    _each_value(problems, path.field("values"), condition.values, value_check)
    _each_value(problems, path.field("notValues"), condition.not_values, value_check)
    if key == "source.serviceAccount":
        _check_service_accounts(problems, path.field("values"), condition.values)
        _check_service_accounts(problems, path.field("notValues"), condition.not_values)


def _attribute_rule(key: str) -> tuple[str | None, ValueCheck | None]:
    """(why the key is refused, or None; the check each of its values must pass)."""
    if key in ("source.ip", "remote.ip", "destination.ip"):
        return None, _ip_error
    if key == "destination.port":
        return None, _port_error
    if key in ("source.namespace", "source.principal", "source.serviceAccount", "connection.sni"):
        return None, None
    if key.startswith("request.headers"):
        return _header_key_error(key), None
    if key in _REQUEST_AUTH_KEYS:
        return None, None
    if key.startswith(_CLAIMS_PREFIX):
        return _claims_key_error(key), None
    if key == "source.trustDomain" or key.startswith("experimental.envoy.filters."):
        return f"attribute {key} is {NOT_SUPPORTED}", None
    if key == "destination.namespace":
        return "attribute destination.namespace is replaced by metadata.namespace", None
    if key.startswith("destination.labels"):
        return "attribute destination.labels is replaced by the workload selector", None
    if key in ("destination.name", "destination.user"):
        return f"deprecated attribute {key}: only supported in v1alpha1", None
    return f"unknown attribute {short_repr(key)}", None


def _header_key_error(key: str) -> str | None:
    match = _MAP_KEY.fullmatch(key)
    if match is None or match["attribute"] != "request.headers":
        return f"{short_repr(key)} must have the form request.headers[<header name>]"
    return names.header_name_error(match["name"].removeprefix(":"))


def _claims_key_error(key: str) -> str | None:
    """Istio's request.auth.claims[name], nested as claims[outer][inner]."""
    if _CLAIM_PATH.fullmatch(key.removeprefix(_CLAIMS_PREFIX)) is None:
        return (
            f"{short_repr(key)} must have the form request.auth.claims[<claim>] "
            "(nested: request.auth.claims[<claim>][<claim>])"
        )
    return None


def _each_value(
    problems: Problems, path: FieldPath, values: list[str], check: ValueCheck | None
) -> None:
    for position, value in enumerate(values):
        if value == "":
            problems.add(path.index(position), "must not be empty")
            continue
        problem = check(value) if check is not None else None
        if problem:
            problems.add(path.index(position), problem)


def _check_service_accounts(problems: Problems, path: FieldPath, values: list[str]) -> None:
    """Istio's CheckServiceAccount: `name` or `namespace/name`, no wildcards, at most 16."""
    if len(values) > MAX_SERVICE_ACCOUNTS:
        problems.add(path, f"at most {MAX_SERVICE_ACCOUNTS} service accounts are allowed")
    for position, value in enumerate(values):
        if value == "":
            continue  # reported as empty by the caller
        here = path.index(position)
        namespace, slash, account = value.rpartition("/")
        if "*" in value:
            problems.add(here, "wildcards are not allowed in service accounts")
        elif value.count("/") > 1 or not account or (slash and not namespace):
            problems.add(
                here, f"{short_repr(value)} must have the form serviceAccount or namespace/name"
            )
        elif len(value) > MAX_SERVICE_ACCOUNT_LENGTH:
            problems.add(here, f"must be at most {MAX_SERVICE_ACCOUNT_LENGTH} characters")


def _ip_error(value: str) -> str | None:
    if "%" in value:
        return f"{short_repr(value)}: IPv6 zones are not supported"
    return names.ip_or_cidr_error(value)


def _port_error(value: str) -> str | None:
    """Istio's ports are strings of a number in 0-65535."""
    if _PORT.fullmatch(value) is None or int(value) > 65535:
        return f"{short_repr(value)} is not a port number (0-65535)"
    return None


def path_template_error(path: str) -> str | None:
    """Istio's CheckValidPathTemplate: `{*}` and `{**}` only as whole segments, `{**}` last,
    literal segments of a template made of URI path characters only; and, as Envoy needs,
    a template starts with `/`."""
    is_template = _MATCH_ONE in path or _MATCH_ANY in path
    if is_template and not path.startswith("/"):
        return f"path template {short_repr(path)} must start with /"
    seen_match_any = False
    for segment in path.strip("/").split("/"):
        if segment in (_MATCH_ONE, _MATCH_ANY):
            if seen_match_any:
                return f"path template {short_repr(path)}: {{**}} must be the last operator"
            seen_match_any = segment == _MATCH_ANY
            continue
        if "{" in segment or "}" in segment:
            return (
                f"path {short_repr(path)}: {{ and }} are only allowed in the path template "
                "operators {*} and {**}, each a whole segment"
            )
        if is_template and _TEMPLATE_LITERAL.fullmatch(segment) is None:
            return (
                f"path template {short_repr(path)}: segment {short_repr(segment)} may hold only "
                "letters, digits and -._~%!$&'()+,;:@"
            )
    return None


def _lists(model: Source | Operation) -> Iterator[tuple[str, str, list[str]]]:
    """(attribute, YAML name, values) of each list field, in declaration order."""
    for name, info in type(model).model_fields.items():
        yield name, info.alias or name, getattr(model, name)


_OPERATION_CHECKS: dict[str, ValueCheck] = {
    "ports": _port_error,
    "not_ports": _port_error,
    "paths": path_template_error,
    "not_paths": path_template_error,
}
