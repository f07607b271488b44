"""Host names as Istio and Kubernetes resolve them."""

from __future__ import annotations

from collections.abc import Collection


def service_fqdn(name: str, namespace: str, domain_suffix: str = "cluster.local") -> str:
    return f"{name}.{namespace}.svc.{domain_suffix}"


def resolve_short_name(host: str, namespace: str, domain_suffix: str = "cluster.local") -> str:
    """Istio's ResolveShortnameToFQDN: a host without dots is relative to the config's namespace.

    Hosts with dots (and wildcards such as `*.example.com`) are taken literally; `*` stays `*`.
    """
    if host == "*" or "." in host:
        return host
    return service_fqdn(host, namespace, domain_suffix)


def resolve_config_host(
    host: str, namespace: str, known_hosts: Collection[str], domain_suffix: str = "cluster.local"
) -> str:
    """A host written in a VirtualService or DestinationRule, as isthmus resolves it.

    Istio's rule first (a name without dots is relative to the config's namespace). Beyond
    Istio, `name.ns` and `name.ns.svc` also resolve to the service FQDN when the literal
    host is no known service but the expanded FQDN is, as a Kubernetes resolver would.
    """
    resolved = resolve_short_name(host, namespace, domain_suffix)
    if resolved != host or host.startswith("*") or host in known_hosts:
        return resolved
    parts = host.split(".")
    if len(parts) == 2 or (len(parts) == 3 and parts[2] == "svc"):
        candidate = service_fqdn(parts[0], parts[1], domain_suffix)
        if candidate in known_hosts:
            return candidate
    return host


def host_matches(pattern: str, hostname: str) -> bool:
    """Whether a (possibly wildcard) config host covers a concrete service hostname."""
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return hostname.endswith(pattern[1:])
    return pattern == hostname


def kubernetes_alt_names(
    hostname: str, namespace: str, proxy_namespace: str, domain_suffix: str = "cluster.local"
) -> list[str]:
    """The names an app may use for a Kubernetes service, as its resolver would expand them.

    `name`, `name.ns`, `name.ns.svc`, FQDN; the bare `name` only from the same namespace.
    """
    suffix = f".{namespace}.svc.{domain_suffix}"
    if not hostname.endswith(suffix):
        return [hostname]
    name = hostname[: -len(suffix)]
    names = [hostname, f"{name}.{namespace}.svc", f"{name}.{namespace}"]
    if namespace == proxy_namespace:
        names.append(name)
    return names
