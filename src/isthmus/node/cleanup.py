"""`isthmus down` when the node runtime is gone: stop its pods' shims, remove the network
and the reference to the host's network namespace (netns.host_netns).

The node runtime normally does this itself (`down` asks it to). When it crashed, its
pods may still run under their shims, holding the mesh's claim; they are found through
the node runtime's records and stopped, then everything carrying the mesh's name goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
from pathlib import Path

from isthmus.home import MeshHome
from isthmus.netns import MeshNetwork, NetworkConfig
from isthmus.netns.host_netns import release_host_netns
from isthmus.node.main import proxy_dir, shim_dir
from isthmus.node.ownership import lock_path
from isthmus.runtime.records import PodRecords
from isthmus.runtime.shim_client import (
    ShimClient,
    ShimRefused,
    ShimUnavailable,
    shim_socket_path,
)

log = logging.getLogger("isthmus.node")

SHIM_EXIT_GRACE = 5.0


def _shim_sockets(mesh: str, home: MeshHome) -> list[Path]:
    shims = shim_dir(mesh)
    sockets = set(shims.glob("*.sock"))
    for record in PodRecords(home.node_state / "pods").load_all():
        sockets.add(shim_socket_path(shims, f"{record.get('namespace')}.{record.get('name')}"))
    return sorted(sockets)


async def _stop_shim(socket: Path) -> None:
    client = ShimClient(socket)
    try:
        status = await client.status()
    except (ShimUnavailable, ShimRefused, ValueError, KeyError):
        return
    try:
        await client.exit(SHIM_EXIT_GRACE)
    except (ShimUnavailable, ShimRefused):
        with contextlib.suppress(ProcessLookupError):
            os.kill(status.pid, signal.SIGKILL)  # its processes die with it


async def force_down(home: MeshHome, config: NetworkConfig) -> None:
    """Stop every shim of the mesh, then remove its namespaces, files and claim."""
    await asyncio.gather(*(_stop_shim(s) for s in _shim_sockets(config.mesh, home)))
    await MeshNetwork(config).teardown()
    release_host_netns(home.host_netns)
    shutil.rmtree(proxy_dir(config.mesh), ignore_errors=True)
    shutil.rmtree(home.node_state, ignore_errors=True)
    lock_path(config.mesh).unlink(missing_ok=True)
