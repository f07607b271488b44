"""isthmus.netns: pod networking on one Linux machine, without Kubernetes.

Each pod is a network namespace with a veth onto a bridge that lives in a per-mesh node
namespace; istio-init's iptables capture runs inside the pod namespace. Nothing is ever
created in the root namespace, and every name carries the mesh's prefix so teardown
removes exactly what the mesh made. External commands go through `commands.run`.
"""

from isthmus.netns.addressing import NetworkConfig, NetworkConfigError
from isthmus.netns.capture import CaptureConfig, capture_config_from_annotations, render_rules
from isthmus.netns.commands import (
    CommandFailed,
    CommandResult,
    ToolsMissing,
    require_tools,
    run,
    run_sync,
)
from isthmus.netns.network import (
    MeshNetwork,
    PodNetwork,
    TeardownIncomplete,
    exec_argv,
    existing_netns,
)

__all__ = [
    "CaptureConfig",
    "CommandFailed",
    "CommandResult",
    "MeshNetwork",
    "NetworkConfig",
    "NetworkConfigError",
    "PodNetwork",
    "TeardownIncomplete",
    "ToolsMissing",
    "capture_config_from_annotations",
    "exec_argv",
    "existing_netns",
    "render_rules",
    "require_tools",
    "run",
    "run_sync",
]
