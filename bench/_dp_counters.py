"""Envoy's own counters for each scenario's hop between the proxies: requests, upstream
connections, TLS handshakes (and how many resumed a session), read from each Envoy's admin
on 127.0.0.1 inside its pod; and the checks that a scenario's mTLS mode is what it claims.

A scenario's client side is the cluster its client proxy sends to; its server side is the
server proxy's listener (handshakes) and its cluster to the app (connections). Each Envoy
is read once per snapshot, whatever number of scenarios it serves.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

InPod = Callable[[Sequence[str]], list[str]]

_GET = (
    "import sys,urllib.request;"
    "sys.stdout.write(urllib.request.urlopen(sys.argv[1],timeout=5).read().decode())"
)
_STATUS = (
    "import sys,urllib.request\n"
    "try:\n"
    "    print(urllib.request.urlopen(sys.argv[1],timeout=3).status)\n"
    "except Exception as e:\n"
    "    print(type(e).__name__)\n"
)

# What each metric sums, per side: (side, stat prefix kind, counter name).
METRICS: dict[str, tuple[str, str, str]] = {
    "requests": ("client", "cluster", "upstream_rq_total"),
    "connections": ("client", "cluster", "upstream_cx_total"),
    "closed at max requests": ("client", "cluster", "upstream_cx_max_requests"),
    "retries": ("client", "cluster", "upstream_rq_retry"),
    "client handshakes": ("client", "cluster", "ssl.handshake"),
    "client resumed": ("client", "cluster", "ssl.session_reused"),
    "server connections": ("server", "listener", "downstream_cx_total"),
    "server handshakes": ("server", "listener", "ssl.handshake"),
    "server resumed": ("server", "listener", "ssl.session_reused"),
    "server TLS errors": ("server", "listener", "ssl.connection_error"),
    "app connections": ("server", "cluster", "upstream_cx_total"),
}
Counters = dict[str, int]


def http_get(in_pod: InPod, url: str) -> str:
    """GET `url` from inside a pod (the admin listens on the pod's 127.0.0.1 only)."""
    return subprocess.run(
        in_pod([sys.executable, "-c", _GET, url]),
        capture_output=True,
        text=True,
        check=True,
        timeout=20,
    ).stdout


def answered(in_pod: InPod, url: str) -> str:
    """A plain HTTP GET from inside a pod: its status code, or the error's name."""
    return subprocess.run(
        in_pod([sys.executable, "-c", _STATUS, url]),
        capture_output=True,
        text=True,
        check=True,
        timeout=20,
    ).stdout.strip()


@dataclass(frozen=True)
class Envoy:
    """One Envoy whose admin the bench can read."""

    key: str  # unique: "<netns>:<admin port>"
    in_pod: InPod
    admin_port: int

    def stats(self) -> Counters:
        text = http_get(self.in_pod, f"http://127.0.0.1:{self.admin_port}/stats")
        out: Counters = {}
        for line in text.splitlines():
            name, _, value = line.partition(": ")
            if value.strip().isdigit():
                out[name] = int(value)
        return out

    def config_dump(self, resource: str) -> list[dict[str, object]]:
        url = f"http://127.0.0.1:{self.admin_port}/config_dump?resource={resource}"
        configs = json.loads(http_get(self.in_pod, url)).get("configs", [])
        return [c for c in configs if isinstance(c, dict)]


@dataclass(frozen=True)
class Side:
    """One proxy of a scenario's path and the stat prefixes of that path in it."""

    envoy: Envoy
    cluster: str  # "cluster.<name>." of the cluster towards the next hop
    listener: str = ""  # "listener.<address>." of the server's listener; "" on the client


@dataclass(frozen=True)
class Counted:
    """Where a scenario's counters live and what its mTLS mode claims."""

    client: tuple[Side, ...]
    server: tuple[Side, ...]
    mtls: bool  # the hop between the proxies is mutual TLS
    # A plain HTTP GET from a pod without a sidecar to the server proxy, and whether the
    # mode says it must be answered (PERMISSIVE, DISABLE) or refused (STRICT, TLS-only).
    plaintext_url: str = ""
    plaintext_answered: bool = True


Snapshot = dict[str, Counters]  # Envoy key -> its counters


def snapshot(counted: Sequence[Counted]) -> Snapshot:
    envoys = {s.envoy.key: s.envoy for c in counted for s in (*c.client, *c.server)}
    return {key: envoy.stats() for key, envoy in envoys.items()}


def metrics(counted: Counted, snap: Snapshot) -> Counters:
    out: Counters = {}
    for metric, (side, kind, counter) in METRICS.items():
        total = 0
        for s in counted.client if side == "client" else counted.server:
            prefix = s.cluster if kind == "cluster" else s.listener
            if prefix:
                total += snap.get(s.envoy.key, {}).get(prefix + counter, 0)
        out[metric] = total
    return out


def delta(counted: Counted, before: Snapshot, after: Snapshot) -> Counters:
    first, last = metrics(counted, before), metrics(counted, after)
    return {k: last[k] - first[k] for k in last}


@dataclass
class ModeCheck:
    """Whether a scenario's mode is what it claims, from its counters since its Envoys
    started and a plaintext request from outside the mesh."""

    scenario: str
    mtls: bool
    since_start: Counters
    plaintext_expected: bool
    plaintext_result: str
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check(scenario: str, counted: Counted, snap: Snapshot, probe_from: InPod) -> ModeCheck:
    totals = metrics(counted, snap)
    result = answered(probe_from, counted.plaintext_url) if counted.plaintext_url else "-"
    found = ModeCheck(scenario, counted.mtls, totals, counted.plaintext_answered, result)
    client, server = totals["client handshakes"], totals["server handshakes"]
    if totals["connections"] == 0:
        found.problems.append("no upstream connection at all")
    if counted.mtls and (client == 0 or server == 0):
        found.problems.append(f"mTLS claimed but handshakes client {client} server {server}")
    if not counted.mtls and (client or server):
        found.problems.append(f"plaintext claimed but handshakes client {client} server {server}")
    if counted.plaintext_url and (result == "200") != counted.plaintext_answered:
        want = "answered" if counted.plaintext_answered else "refused"
        found.problems.append(f"plaintext from outside should be {want}, got {result}")
    return found
