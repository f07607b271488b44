"""The bare Envoy pair: one Envoy per pod with the smallest static config that carries the
same traffic as the sidecars (client listener -> server Envoy -> app), and nothing else:
no xDS, no admin, no stats sinks, no access log, no capture, plain HTTP/1.1.

It is the yardstick the architecture asks for: what isthmus costs beyond Envoy itself.
Both Envoys get the sidecars' worker count.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLIENT_PORT = 15001  # as the sidecar's outbound capture port
SERVER_PORT = 15006  # as the sidecar's inbound capture port

_HCM = (
    "type.googleapis.com/"
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
)
_ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"


def _address(ip: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": ip, "port_value": port}}


def bootstrap(listen_ip: str, listen_port: int, upstream_ip: str, upstream_port: int) -> str:
    """One HTTP listener routing everything to one static upstream, as JSON."""
    listener = {
        "name": "bench",
        "address": _address(listen_ip, listen_port),
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": _HCM,
                            "stat_prefix": "bench",
                            "route_config": {
                                "virtual_hosts": [
                                    {
                                        "name": "all",
                                        "domains": ["*"],
                                        "routes": [
                                            {"match": {"prefix": "/"}, "route": {"cluster": "up"}}
                                        ],
                                    }
                                ]
                            },
                            "http_filters": [
                                {
                                    "name": "envoy.filters.http.router",
                                    "typed_config": {"@type": _ROUTER},
                                }
                            ],
                        },
                    }
                ]
            }
        ],
    }
    cluster = {
        "name": "up",
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": "up",
            "endpoints": [
                {"lb_endpoints": [{"endpoint": {"address": _address(upstream_ip, upstream_port)}}]}
            ],
        },
    }
    return json.dumps({"static_resources": {"listeners": [listener], "clusters": [cluster]}})


@dataclass
class BareEnvoy:
    """One bench-started Envoy inside a pod's namespace (its pid is Envoy's own: `ip netns
    exec` execs)."""

    name: str
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start(
    name: str,
    binary: str,
    config: str,
    concurrency: int,
    workdir: Path,
    in_pod: Callable[[Sequence[str]], list[str]],
) -> BareEnvoy:
    config_path = workdir / f"{name}.json"
    config_path.write_text(config)
    log = (workdir / f"{name}.log").open("ab")
    argv = [
        binary,
        "-c",
        str(config_path),
        "--concurrency",
        str(concurrency),
        "--disable-hot-restart",
        "--use-dynamic-base-id",
        "--log-level",
        "warning",
    ]
    with log:
        process = subprocess.Popen(
            in_pod(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    return BareEnvoy(name, process)


def wait_serving(probe: Callable[[], bool], envoys: Sequence[BareEnvoy], timeout: float) -> None:
    """Until `probe` (one request end to end) succeeds; fails early if an Envoy died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for envoy in envoys:
            if envoy.process.poll() is not None:
                raise RuntimeError(f"bare Envoy {envoy.name} exited ({envoy.process.returncode})")
        if probe():
            return
        time.sleep(0.2)
    raise RuntimeError(f"bare Envoy pair not serving within {timeout:.0f}s")
