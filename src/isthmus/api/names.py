"""Syntax of names the YAML carries: DNS labels and hosts, labels, IPs, HTTP headers.

Each checker returns None when the value is fine, or a plain message saying what is
wrong. The rules are Kubernetes' (object names) and Istio's (hosts, subsets, labels,
headers); the messages are ours.
"""

from __future__ import annotations

import ipaddress
import re

_LABEL_MAX = 63
_SUBDOMAIN_MAX = 253
_DOMAIN_MAX = 255

_K8S_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?")
_K8S_SUBDOMAIN = re.compile(
    r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*"
)
_K8S_1035_LABEL = re.compile(r"[a-z](?:[-a-z0-9]*[a-z0-9])?")
_ISTIO_LABEL = re.compile(r"[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?")
_ISTIO_WILDCARD_LABEL = re.compile(r"\*|(?:\*|\*-)?[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?")
_QUALIFIED_NAME = re.compile(r"(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_HTTP_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~A-Za-z0-9]+")
_HEADER_VALUE_FORBIDDEN = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_IANA_SVC_NAME = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?")
_CIDR_PREFIX = re.compile(r"[0-9]{1,3}")

PSEUDO_HEADERS = frozenset({":method", ":scheme", ":authority", ":path", ":status"})


def dns1123_label_error(value: str) -> str | None:
    """Kubernetes DNS-1123 label: namespaces, container and port names."""
    if len(value) > _LABEL_MAX or not _K8S_LABEL.fullmatch(value):
        return (
            f"{_quote(value)} is not a valid name: use at most 63 lower-case letters, digits "
            "and '-', starting and ending with a letter or digit"
        )
    return None


def dns1123_subdomain_error(value: str) -> str | None:
    """Kubernetes DNS-1123 subdomain: names of most objects."""
    if len(value) > _SUBDOMAIN_MAX or not _K8S_SUBDOMAIN.fullmatch(value):
        return (
            f"{_quote(value)} is not a valid name: use at most 253 lower-case letters, digits, "
            "'-' and '.', starting and ending with a letter or digit"
        )
    return None


def dns1035_label_error(value: str) -> str | None:
    """Kubernetes DNS-1035 label: Service names (they become DNS names)."""
    if len(value) > _LABEL_MAX or not _K8S_1035_LABEL.fullmatch(value):
        return (
            f"{_quote(value)} is not a valid Service name: use at most 63 lower-case letters, "
            "digits and '-', starting with a letter and ending with a letter or digit"
        )
    return None


def is_istio_dns_label(value: str) -> bool:
    """Istio's DNS label (upper case allowed): subset and port names, host labels."""
    return len(value) <= _LABEL_MAX and _ISTIO_LABEL.fullmatch(value) is not None


def istio_label_error(what: str, value: str) -> str | None:
    """`what` names the thing in the message ("subset name", "port name")."""
    if not value:
        return f"{what} must not be empty"
    if not is_istio_dns_label(value):
        return (
            f"{what} {_quote(value)} is invalid: use at most 63 letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return None


def _domain_precondition_error(domain: str) -> str | None:
    if not domain:
        return "empty domain name not allowed"
    if len(domain) > _DOMAIN_MAX:
        return f"domain name {_quote(domain)} is too long (max 255)"
    return None


def _labels_error(domain: str, labels: list[str]) -> str | None:
    top = labels[-1]
    if top.isascii() and top.isdigit():
        return (
            f"domain name {_quote(domain)} is invalid: "
            f"top-level domain {_quote(top)} is all numeric"
        )
    for position, label in enumerate(labels):
        if position == len(labels) - 1 and label == "":
            return None  # a trailing dot, as in "istio.io."
        if not is_istio_dns_label(label):
            return f"domain name {_quote(domain)} is invalid: label {_quote(label)} is invalid"
    return None


def fqdn_error(domain: str) -> str | None:
    """A fully qualified domain name, no wildcards (Istio's ValidateFQDN)."""
    return _domain_precondition_error(domain) or _labels_error(domain, domain.split("."))


def wildcard_domain_error(domain: str) -> str | None:
    """A host that may start with a wildcard label: `*`, `*.example.com`, `reviews`."""
    problem = _domain_precondition_error(domain)
    if problem:
        return problem
    first, _, rest = domain.partition(".")
    if len(first) > _LABEL_MAX or not _ISTIO_WILDCARD_LABEL.fullmatch(first):
        return f"domain name {_quote(domain)} is invalid: label {_quote(first)} is invalid"
    if "." in domain:
        return _labels_error(domain, rest.split("."))
    return None


def hosts_overlap(first: str, second: str) -> bool:
    """Whether two hosts (each possibly a `*.` wildcard) can name the same host."""
    if first.startswith("*") and second.startswith("*"):
        return first[1:].endswith(second[1:]) or second[1:].endswith(first[1:])
    if first.startswith("*"):
        return second.endswith(first[1:])
    if second.startswith("*"):
        return first.endswith(second[1:])
    return first == second


def is_ip_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def ip_or_cidr_error(value: str) -> str | None:
    """An address or a CIDR block: `10.0.0.1`, `10.0.0.0/8`, `2001:db8::/32`."""
    if value.count("/") == 1:
        address, prefix = value.split("/")
        if is_ip_address(address) and _CIDR_PREFIX.fullmatch(prefix):
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError:
                pass
            else:
                return None
        return f"{_quote(value)} is not a valid CIDR block"
    if not is_ip_address(value):
        return f"{_quote(value)} is not a valid IP address"
    return None


def label_errors(labels: dict[str, str]) -> list[tuple[str, str]]:
    """(key, message) for each invalid label key or value (Kubernetes label syntax)."""
    problems: list[tuple[str, str]] = []
    for key, value in labels.items():
        prefix, slash, name = key.rpartition("/")
        key_ok = (
            _QUALIFIED_NAME.fullmatch(name) is not None
            and len(name) <= _LABEL_MAX
            and (not slash or dns1123_subdomain_error(prefix) is None)
        )
        if not key_ok:
            problems.append((key, f"invalid label key {_quote(key)}"))
        if value and (len(value) > _LABEL_MAX or not _QUALIFIED_NAME.fullmatch(value)):
            problems.append(
                (
                    key,
                    f"invalid label value {_quote(value)}: use at most 63 letters, digits, '-', "
                    "'_' and '.', starting and ending with a letter or digit",
                )
            )
    return problems


def annotation_key_error(key: str) -> str | None:
    prefix, slash, name = key.rpartition("/")
    if (
        _QUALIFIED_NAME.fullmatch(name) is None
        or len(name) > _LABEL_MAX
        or (slash and dns1123_subdomain_error(prefix) is not None)
    ):
        return f"invalid annotation key {_quote(key)}"
    return None


def header_name_error(name: str) -> str | None:
    """An HTTP header name as RFC 7230 defines a token."""
    if not name:
        return "header name must not be empty"
    if not _HTTP_TOKEN.fullmatch(name):
        return f"header name {_quote(name)} is not a valid HTTP header name"
    return None


def header_value_error(value: str) -> str | None:
    """A header value Envoy accepts: no control characters, `%` only as `%%` or `%VAR%`."""
    if _HEADER_VALUE_FORBIDDEN.search(value):
        return f"header value {_quote(value)} contains a control character"
    position = 0
    while position < len(value):
        if value[position] != "%":
            position += 1
            continue
        if value.startswith("%%", position):
            position += 2
            continue
        end = _end_of_variable(value, position + 1)
        if end is None:
            return (
                f"header value {_quote(value)} has an unterminated %VARIABLE% "
                "(write %% for a literal %)"
            )
        position = end + 1
    return None


def _end_of_variable(value: str, start: int) -> int | None:
    """Index of the `%` closing a variable whose name starts at `start`, else None."""
    position = start
    while position < len(value) and value[position] not in "%(":
        position += 1
    if position >= len(value):
        return None
    if value[position] == "%":
        return position
    position += 1  # arguments: skip to the matching ")" outside double quotes
    quoted = False
    while position < len(value):
        char = value[position]
        if quoted and char == "\\":
            position += 2
            continue
        if char == '"':
            quoted = not quoted
        elif char == ")" and not quoted:
            break
        position += 1
    else:
        return None
    position += 1
    while position < len(value) and value[position] == " ":
        position += 1
    if position < len(value) and value[position] == "%":
        return position
    return None


def iana_service_name_error(name: str) -> str | None:
    """Kubernetes named ports: at most 15 characters, a letter included, no '--'."""
    if (
        len(name) > 15
        or not _IANA_SVC_NAME.fullmatch(name)
        or "--" in name
        or not any(c.isalpha() for c in name)
    ):
        return (
            f"{_quote(name)} is not a valid port name: use at most 15 lower-case letters, "
            "digits and '-', with at least one letter"
        )
    return None


def _quote(value: str) -> str:
    shown = value if len(value) <= 80 else value[:77] + "..."
    return '"' + shown.replace('"', '\\"') + '"'
