"""Where a mesh keeps its state: one home directory holding the database, socket and logs.

The home is `--home`, else `$ISTHMUS_HOME`, else `~/.isthmus`, so several meshes can
live side by side on one machine and every component agrees on the file names.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

HOME_ENV = "ISTHMUS_HOME"
DEFAULT_HOME = "~/.isthmus"

# sun_path is 108 bytes on Linux, including the terminating NUL.
_MAX_SOCKET_PATH = 107


@dataclass(frozen=True)
class MeshHome:
    """The file layout under one mesh home directory."""

    root: Path

    @property
    def socket(self) -> Path:
        """The daemon's HTTP API (the CLI's only way in)."""
        return self.root / "isthmusd.sock"

    @property
    def zipkin_socket(self) -> Path:
        """isthmusd's Zipkin collector: the sidecars' spans arrive here (through their agent),
        apart from the API so that spans never queue in front of a CLI request."""
        return self.root / "zipkin.sock"

    @property
    def db(self) -> Path:
        return self.root / "isthmus.db"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    @property
    def node_socket(self) -> Path:
        """The node runtime's control API (status, shutdown)."""
        return self.root / "node.sock"

    @property
    def node_state(self) -> Path:
        """The node runtime's state on disk: its pods' records."""
        return self.root / "node"

    @property
    def ca_dir(self) -> Path:
        """The mesh CA: its root and key (0600), and the pod-token key. Root only."""
        return self.root / "ca"

    @property
    def host_netns(self) -> Path:
        """The host's network namespace as a file (a bind mount the node runtime makes for
        an ingress gateway's published ports; netns.host_netns). Root only."""
        return self.root / "run" / "host-netns"

    @property
    def settings(self) -> Path:
        """How `isthmus up` started this home's mesh (name, CIDRs), for restart and down."""
        return self.root / "mesh.json"

    def check_socket_path(self) -> None:
        """Raise ValueError if the socket path is too long for a unix socket address."""
        length = len(os.fsencode(self.socket))
        if length > _MAX_SOCKET_PATH:
            raise ValueError(
                f"the mesh home {self.root} is too deep: its socket path is {length} bytes, "
                f"unix sockets allow {_MAX_SOCKET_PATH}; use a shorter --home"
            )


def resolve_home(
    home: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> MeshHome:
    """The mesh home from an explicit path, else $ISTHMUS_HOME, else ~/.isthmus (absolute)."""
    env = os.environ if environ is None else environ
    chosen = os.fspath(home) if home is not None else env.get(HOME_ENV) or DEFAULT_HOME
    return MeshHome(Path(chosen).expanduser().absolute())
