"""Istio's MeshConfig, the part isthmus reads from a file (`isthmus up --mesh-config`):
what istiod reads from the `istio` ConfigMap's `mesh` key, same field names.

Honoured: accessLogFile, accessLogEncoding, accessLogFormat, enableTracing,
defaultConfig.tracing.sampling, defaultConfig.tracing.zipkin.address,
outboundTrafficPolicy.mode and localityLbSetting (replacing Istio's default, `enabled:
true`, as a MeshConfig field replaces its default). The mesh's
identity settings have their own flags (--trust-domain, --root-namespace,
--path-normalization); the rest of Istio's MeshConfig is refused as not supported yet,
so a setting is never silently ignored.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

from pydantic import Field, Strict, ValidationError

from isthmus.api.base import IstioModel
from isthmus.api.checks_locality import check_locality_lb_setting
from isthmus.api.errors import FieldPath, FieldProblem, Problems, one_line
from isthmus.api.networking import LocalityLoadBalancerSetting
from isthmus.api.schema_errors import validation_problems
from isthmus.api.sidecar import OutboundTrafficPolicyMode
from isthmus.api.yamlstream import decode_input, read_documents

_OWN_FLAGS = {
    "trustDomain": "--trust-domain",
    "rootNamespace": "--root-namespace",
    "pathNormalization": "--path-normalization",
}


class AccessLogEncoding(StrEnum):
    TEXT = "TEXT"
    JSON = "JSON"


class Zipkin(IstioModel):
    """Where sidecars send spans instead of isthmusd's collector: `host:port` of a
    service in the mesh (e.g. a Jaeger or Tempo pod's Service)."""

    address: str


class Tracing(IstioModel):
    not_supported_fields = frozenset(
        {
            "lightstep",
            "datadog",
            "stackdriver",
            "openCensusAgent",
            "tlsSettings",
            "customTags",
            "maxPathTagLength",
        }
    )

    sampling: float | None = Field(default=None, ge=0, le=100)
    zipkin: Zipkin | None = None


class ProxyConfig(IstioModel):
    """MeshConfig.defaultConfig: only its tracing settings are read from the file."""

    tracing: Tracing | None = None


class MeshOutboundTrafficPolicy(IstioModel):
    """The mesh-wide default of Sidecar's outboundTrafficPolicy (ALLOW_ANY unless set)."""

    mode: Annotated[OutboundTrafficPolicyMode, Strict(False)] | None = None


class MeshConfigFile(IstioModel):
    not_supported_fields = frozenset(
        {
            "accessLogFormatJson",
            "defaultProviders",
            "extensionProviders",
            "enableAutoMtls",
            "defaultDestinationRuleExportTo",
            "defaultServiceExportTo",
            "defaultVirtualServiceExportTo",
            "ingressClass",
            "ingressService",
            "ingressControllerMode",
            "dnsRefreshRate",
            "protocolDetectionTimeout",
            "connectTimeout",
            "tcpKeepalive",
            "h2UpgradePolicy",
            "meshMTLS",
            "tlsDefaults",
            "caCertificates",
            "discoverySelectors",
            "serviceSettings",
            "enablePrometheusMerge",
            "inboundTrafficPolicy",
        }
    )

    access_log_file: str | None = None
    access_log_encoding: Annotated[AccessLogEncoding, Strict(False)] | None = None
    access_log_format: str | None = None
    enable_tracing: bool | None = None
    default_config: ProxyConfig | None = None
    outbound_traffic_policy: MeshOutboundTrafficPolicy | None = None
    locality_lb_setting: LocalityLoadBalancerSetting | None = None


class MeshConfigError(ValueError):
    """The file is not a MeshConfig isthmus can honour; one line per problem."""


def _semantic(config: MeshConfigFile) -> list[FieldProblem]:
    problems = []
    if config.access_log_format and config.access_log_encoding is AccessLogEncoding.JSON:
        try:
            fields = json.loads(config.access_log_format)
        except ValueError as error:
            fields, reason = None, f"is not JSON: {error}"
        else:
            reason = "must be a JSON object of strings"
        if not (isinstance(fields, dict) and all(isinstance(v, str) for v in fields.values())):
            problems.append(FieldProblem("accessLogFormat", reason))
    tracing = config.default_config.tracing if config.default_config else None
    if tracing and tracing.zipkin:
        host, _, port = tracing.zipkin.address.rpartition(":")
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            problems.append(
                FieldProblem("defaultConfig.tracing.zipkin.address", "must be HOST:PORT")
            )
    if config.locality_lb_setting is not None:
        found = Problems()
        check_locality_lb_setting(found, FieldPath("localityLbSetting"), config.locality_lb_setting)
        problems.extend(found.items)
    return problems


def parse_mesh_config(text: str, source: str) -> MeshConfigFile:
    """The file's MeshConfig, or MeshConfigError naming the file and each field."""
    decoded = decode_input(text)
    if not isinstance(decoded, tuple):
        raise MeshConfigError(one_line(f"{source}: {decoded.message}"))
    documents, problem = read_documents(*decoded)
    if problem is not None:
        raise MeshConfigError(one_line(f"{source}: {problem.message}"))
    if len(documents) != 1 or not isinstance(documents[0].data, dict):
        raise MeshConfigError(f"{source}: must hold one MeshConfig mapping")
    data = documents[0].data
    flagged = [
        f"{source}: {key}: set it with {flag}" for key, flag in _OWN_FLAGS.items() if key in data
    ]
    if flagged:
        raise MeshConfigError("\n".join(flagged))
    try:
        config = MeshConfigFile.model_validate(data, by_alias=True, by_name=False)
    except ValidationError as error:
        problems = validation_problems(MeshConfigFile, error)
        lines = [one_line(f"{source}: {p.render()}") for p in problems]
        raise MeshConfigError("\n".join(lines)) from None
    problems = _semantic(config)
    if problems:
        raise MeshConfigError("\n".join(one_line(f"{source}: {p.render()}") for p in problems))
    return config
