"""isthmus.agent: the per-pod sidecar agent (Istio's pilot-agent).

It turns the pod's facts into Envoy's bootstrap, proxies Envoy's xDS stream (and its
Zipkin spans) to isthmusd, with mutual TLS obtains the pod's certificate and serves it
to Envoy over SDS, runs Envoy as the proxy user and restarts it when it dies, answers
the pod's readiness probe on 15021, and drains Envoy when the pod terminates.
Run it with `python -m isthmus.agent --help`.
"""

from isthmus.agent.bootstrap import sds_cluster, sidecar_bootstrap
from isthmus.agent.certificate_manager import CertificateManager, RenewalPolicy
from isthmus.agent.certificates import (
    CaClient,
    CaRequestFailed,
    WorkloadCertificate,
    certificate_request,
    new_private_key,
    spiffe_identity,
)
from isthmus.agent.envoy_process import Backoff, EnvoySettings, EnvoySupervisor
from isthmus.agent.identity import ProxyIdentity
from isthmus.agent.main import main, run_agent
from isthmus.agent.options import AgentOptions, MtlsOptions, OptionsError, parse_options
from isthmus.agent.proxy_config import ProxyConfigOverrides, proxy_config_from_annotation
from isthmus.agent.readiness import Readiness, ReadinessServer, judge
from isthmus.agent.sds import SdsServer
from isthmus.agent.xds_proxy import XdsProxy

__all__ = [
    "AgentOptions",
    "Backoff",
    "CaClient",
    "CaRequestFailed",
    "CertificateManager",
    "EnvoySettings",
    "EnvoySupervisor",
    "MtlsOptions",
    "OptionsError",
    "ProxyConfigOverrides",
    "ProxyIdentity",
    "Readiness",
    "ReadinessServer",
    "RenewalPolicy",
    "SdsServer",
    "WorkloadCertificate",
    "XdsProxy",
    "certificate_request",
    "judge",
    "main",
    "new_private_key",
    "parse_options",
    "proxy_config_from_annotation",
    "run_agent",
    "sds_cluster",
    "sidecar_bootstrap",
    "spiffe_identity",
]
