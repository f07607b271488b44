"""`python -m isthmus.node --home DIR --mesh NAME`: run the node runtime in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import os
import sys

from isthmus.home import resolve_home
from isthmus.logfmt import setup_logging
from isthmus.netns import NetworkConfigError, ToolsMissing
from isthmus.node.main import NodeOptions, run_node
from isthmus.node.ownership import MeshOwned


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="isthmus-node")
    parser.add_argument("--home")
    parser.add_argument("--mesh", default="isthmus", help="mesh name: prefix of namespaces/links")
    parser.add_argument("--pod-cidr", default="10.44.0.0/16")
    parser.add_argument("--service-cidr", default="10.96.0.0/16")
    parser.add_argument("--trust-domain", default="cluster.local")
    parser.add_argument("--root-namespace", default="istio-system")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    home = resolve_home(args.home)
    home.root.mkdir(parents=True, exist_ok=True)
    setup_logging(args.log_level, home.log_dir / "node.log")
    # One node runtime per home: a second one would fight the first over the same pods.
    guard = os.open(home.root / "node.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(guard, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"error: a node runtime is already running for home {home.root}", file=sys.stderr)
        return 1
    options = NodeOptions(
        args.mesh, args.pod_cidr, args.service_cidr, args.trust_domain, args.root_namespace
    )
    try:
        return asyncio.run(run_node(home, options))
    except (MeshOwned, ToolsMissing, NetworkConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
