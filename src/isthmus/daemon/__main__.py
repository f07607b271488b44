"""`python -m isthmus.daemon --home DIR`: run isthmusd in the foreground."""

from __future__ import annotations

import argparse
import asyncio

from isthmus.daemon.main import DaemonOptions, run_daemon
from isthmus.home import resolve_home
from isthmus.logfmt import setup_logging


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="isthmusd")
    parser.add_argument("--home")
    parser.add_argument("--debounce", type=float, default=0.1, help="quiet window in seconds")
    parser.add_argument("--debounce-max", type=float, default=10.0)
    parser.add_argument("--xds-tcp", help="also serve ADS on this 127.0.0.1:PORT")
    parser.add_argument("--proxy-http-port", type=int)
    parser.add_argument("--log-level", default="info")
    parser.add_argument(
        "--service-cidr", help="virtual IPs for Services without clusterIP (the local runtime's)"
    )
    args = parser.parse_args(argv)
    home = resolve_home(args.home)
    setup_logging(args.log_level, home.log_dir / "isthmusd.log")
    options = DaemonOptions(
        debounce_after=args.debounce,
        debounce_max=args.debounce_max,
        xds_tcp=args.xds_tcp,
        proxy_http_port=args.proxy_http_port,
        service_cidr=args.service_cidr,
    )
    asyncio.run(run_daemon(home, options))


if __name__ == "__main__":
    main()
