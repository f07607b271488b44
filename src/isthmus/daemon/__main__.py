"""`python -m isthmus.daemon --home DIR`: run isthmusd in the foreground."""

from __future__ import annotations

import argparse
import asyncio

from isthmus.daemon.logs import setup_logging
from isthmus.daemon.main import DaemonOptions, run_daemon
from isthmus.daemon.paths import resolve_home


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="isthmusd")
    parser.add_argument("--home")
    parser.add_argument("--debounce", type=float, default=0.1, help="quiet window in seconds")
    parser.add_argument("--debounce-max", type=float, default=10.0)
    parser.add_argument("--xds-tcp", help="also serve ADS on this 127.0.0.1:PORT")
    parser.add_argument("--proxy-http-port", type=int)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--runtime", action="store_true", help="run Deployments as pods (root)")
    parser.add_argument("--mesh", default="isthmus", help="mesh name: prefix of namespaces/links")
    parser.add_argument("--pod-cidr", default="10.44.0.0/16")
    parser.add_argument("--service-cidr", default="10.96.0.0/16")
    args = parser.parse_args(argv)
    home = resolve_home(args.home)
    setup_logging(args.log_level, home.log_dir / "isthmusd.log")
    options = DaemonOptions(
        debounce_after=args.debounce,
        debounce_max=args.debounce_max,
        xds_tcp=args.xds_tcp,
        proxy_http_port=args.proxy_http_port,
        runtime=args.runtime,
        mesh_name=args.mesh,
        pod_cidr=args.pod_cidr,
        service_cidr=args.service_cidr,
    )
    asyncio.run(run_daemon(home, options))


if __name__ == "__main__":
    main()
