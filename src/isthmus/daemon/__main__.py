"""`python -m isthmus.daemon --home DIR`: run isthmusd in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from isthmus.api.mesh_config import MeshConfigError, parse_mesh_config
from isthmus.ca import CaError, CaOptions
from isthmus.daemon.main import DaemonOptions, run_daemon
from isthmus.daemon.zipkin import ZipkinPortUnavailable
from isthmus.home import resolve_home
from isthmus.logfmt import setup_logging


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="isthmusd")
    parser.add_argument("--home")
    parser.add_argument("--debounce", type=float, default=0.1, help="quiet window in seconds")
    parser.add_argument("--debounce-max", type=float, default=10.0)
    parser.add_argument("--xds-tcp", help="also serve ADS on this 127.0.0.1:PORT")
    parser.add_argument("--proxy-http-port", type=int)
    parser.add_argument(
        "--zipkin-port", type=int, help="also serve the Zipkin API on 127.0.0.1:PORT"
    )
    parser.add_argument("--log-level", default="info")
    parser.add_argument(
        "--service-cidr", help="virtual IPs for Services without clusterIP (the local runtime's)"
    )
    parser.add_argument("--trust-domain", default="cluster.local")
    parser.add_argument("--root-namespace", default="istio-system")
    parser.add_argument(
        "--path-normalization",
        choices=["NONE", "BASE", "MERGE_SLASHES", "DECODE_AND_MERGE_SLASHES"],
        default="BASE",
    )
    parser.add_argument(
        "--cacerts",
        type=Path,
        help="Istio's plugged-in CA: ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem",
    )
    parser.add_argument("--mesh-config", type=Path, help="Istio's MeshConfig YAML (checked)")
    parser.add_argument(
        "--ca-key-type", choices=["RSA", "ECDSA"], default="RSA", help="key of a self-signed root"
    )
    args = parser.parse_args(argv)
    home = resolve_home(args.home)
    setup_logging(args.log_level, home.log_dir / "isthmusd.log")
    mesh_config = None
    if args.mesh_config is not None:
        try:
            text = args.mesh_config.read_text(encoding="utf-8")
            mesh_config = parse_mesh_config(text, str(args.mesh_config))
        except (OSError, UnicodeDecodeError, MeshConfigError) as error:
            logging.getLogger("isthmus.daemon").error("mesh_config unusable error=%r", str(error))
            sys.exit(1)
    options = DaemonOptions(
        debounce_after=args.debounce,
        debounce_max=args.debounce_max,
        xds_tcp=args.xds_tcp,
        proxy_http_port=args.proxy_http_port,
        service_cidr=args.service_cidr,
        trust_domain=args.trust_domain,
        root_namespace=args.root_namespace,
        path_normalization=args.path_normalization,
        ca=CaOptions(key_type=args.ca_key_type),
        cacerts=args.cacerts,
        zipkin_port=args.zipkin_port,
        mesh_config=mesh_config,
    )
    try:
        asyncio.run(run_daemon(home, options))
    except CaError as error:
        logging.getLogger("isthmus.daemon").error("ca unusable error=%r", str(error))
        sys.exit(1)
    except ZipkinPortUnavailable as error:
        logging.getLogger("isthmus.daemon").error("zipkin unusable error=%r", str(error))
        sys.exit(1)


if __name__ == "__main__":
    main()
