"""The agent's status file: how often Envoy restarted in this pod, for the pod's RESTARTS.

Kubernetes counts the restarts of a pod's containers; the sidecar container is the agent,
but the agent also restarts Envoy by itself when it dies. The node runtime reads this
file (in the agent's work directory, which outlives agent restarts) and adds its count to
the istio-proxy container's restarts. The count is cumulative over agent restarts: a new
agent continues from what the file says.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

STATUS_NAME = "agent-status.json"
ENVOY_RESTARTS = "envoyRestarts"


def read_envoy_restarts(workdir: Path) -> int:
    """The cumulative Envoy restarts recorded in `workdir` (0 if there is no record)."""
    try:
        data = json.loads((workdir / STATUS_NAME).read_text())
    except (OSError, ValueError):
        return 0
    value = data.get(ENVOY_RESTARTS) if isinstance(data, dict) else None
    return value if isinstance(value, int) and value >= 0 else 0


class EnvoyRestartRecord:
    """Counts Envoy starts of this agent on top of the restarts earlier agents recorded."""

    def __init__(self, workdir: Path) -> None:
        self._path = workdir / STATUS_NAME
        self._base = read_envoy_restarts(workdir)

    def envoy_started(self, starts: int) -> None:
        """Envoy started for the `starts`-th time in this agent (the first is no restart)."""
        restarts = self._base + max(starts - 1, 0)
        temporary = self._path.with_suffix(".tmp")
        temporary.write_text(json.dumps({ENVOY_RESTARTS: restarts, "agentPid": os.getpid()}))
        temporary.replace(self._path)
