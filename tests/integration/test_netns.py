"""Pod networking and istio-init capture with real namespaces, veths, a bridge and iptables.

One small mesh (a unique name per run) with two pods: `client` (A) and `server` (B). B runs
an HTTP app; both run a fake Envoy as uid 1337 that records each connection's listener and
original destination (SO_ORIGINAL_DST) and proxies it on, binding 127.0.0.6 for inbound
like Envoy's inbound passthrough. The mesh is always torn down, also on failure, and the
root namespace's links, addresses, routes and iptables must be byte-identical afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from isthmus.netns import (
    CaptureConfig,
    CommandFailed,
    MeshNetwork,
    NetworkConfig,
    NetworkConfigError,
    PodNetwork,
    exec_argv,
    existing_netns,
    render_rules,
    run_sync,
)
from isthmus.netns.hosts import ETC_NETNS
from isthmus.netns.names import veth_name

T = TypeVar("T")

_TOOLS = ("ip", "iptables-restore", "iptables-save", "setpriv")
pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(
        os.geteuid() != 0, reason="needs root: creates network namespaces, veths and iptables"
    ),
    pytest.mark.skipif(
        any(shutil.which(t, path="/usr/sbin:/sbin:/usr/bin:/bin") is None for t in _TOOLS),
        reason=f"needs {', '.join(_TOOLS)}",
    ),
    pytest.mark.timeout(90),
]

# System Python: readable by uid 1337, stdlib only.
PY = "/usr/bin/python3"
PROXY = 1337
GOLDEN = Path(__file__).parents[1] / "unit" / "netns" / "golden"

FAKE_ENVOY = r"""
import json, socket, struct, sys, threading

def original_dst(conn):
    raw = conn.getsockopt(socket.SOL_IP, 80, 16)  # SO_ORIGINAL_DST
    return socket.inet_ntoa(raw[4:8]), struct.unpack("!H", raw[2:4])[0]

def pipe(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass

def serve(listener, source):
    port = listener.getsockname()[1]
    while True:
        conn, peer = listener.accept()
        ip, dport = original_dst(conn)
        print(json.dumps({"listener": port, "dst": f"{ip}:{dport}", "peer": peer[0]}), flush=True)
        upstream = socket.socket()
        if source:
            upstream.bind((source, 0))
        try:
            upstream.connect((ip, dport))
        except OSError as exc:
            print(json.dumps({"error": str(exc)}), flush=True)
            conn.close()
            continue
        threading.Thread(target=pipe, args=(conn, upstream), daemon=True).start()
        threading.Thread(target=pipe, args=(upstream, conn), daemon=True).start()

listeners = {}
for port in (15001, 15006):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(64)
    listeners[port] = s
threading.Thread(target=serve, args=(listeners[15006], "127.0.0.6"), daemon=True).start()
print(json.dumps({"ready": True}), flush=True)
serve(listeners[15001], None)
"""

APP = r"""
import http.server, json, sys, threading
name, ports = sys.argv[1], [int(p) for p in sys.argv[2:]]

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"server": name, "port": self.server.server_address[1],
                           "peer": self.client_address[0]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

servers = [http.server.ThreadingHTTPServer(("0.0.0.0", p), Handler) for p in ports]
for server in servers[1:]:
    threading.Thread(target=server.serve_forever, daemon=True).start()
print("ready", flush=True)
servers[0].serve_forever()
"""

# No proxies from the environment: the request must go where the URL says.
CLIENT = r"""
import sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
print(opener.open(sys.argv[1], timeout=5).read().decode())
"""

# Prints the /etc/hosts it sees each time it reads a line.
HOSTS_READER = r"""
import sys
for _ in sys.stdin:
    print(repr(open("/etc/hosts").read()), flush=True)
"""


class PodProcess:
    """A process started in a pod with exec_argv; stdout lines are collected by a thread."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._new: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            self._new.put(line)

    def wait_for(self, text: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.proc.poll() is not None:
                raise AssertionError(f"no {text!r} from {self.proc.args!r}: {self.lines}")
            with contextlib.suppress(queue.Empty):
                self._new.get(timeout=min(remaining, 0.5))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.alive():
            self.proc.kill()
        self.proc.wait(timeout=5)
        self._reader.join(timeout=5)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


@dataclass
class World:
    loop: asyncio.AbstractEventLoop
    net: MeshNetwork
    client: PodNetwork
    server: PodNetwork
    root_before: dict[str, str]
    processes: list[PodProcess] = field(default_factory=list)
    envoys: dict[str, PodProcess] = field(default_factory=dict)

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    def spawn(self, pod: PodNetwork, argv: Sequence[str], uid: int | None = None) -> PodProcess:
        process = PodProcess(exec_argv(pod.netns, argv, uid=uid, gid=uid))
        self.processes.append(process)
        return process

    def records(self, pod: PodNetwork) -> list[dict[str, Any]]:
        envoy = self.envoys[pod.pod]
        return [json.loads(line) for line in envoy.lines if line.startswith('{"listener"')]


def root_snapshot() -> dict[str, str]:
    """The root namespace's network state, read only (timestamps of iptables-save dropped)."""
    reads = {
        "link": ["ip", "-j", "link"],
        "addr": ["ip", "-j", "addr"],
        "route": ["ip", "-j", "route"],
        "route6": ["ip", "-j", "-6", "route"],
        "iptables": ["iptables-save"],
    }
    snapshot = {}
    for key, argv in reads.items():
        text = run_sync(argv).text
        snapshot[key] = "\n".join(ln for ln in text.splitlines() if not ln.startswith("#"))
    return snapshot


def request(world: World, url: str, uid: int | None = None) -> dict[str, Any]:
    """GET url from inside the client pod; the app's JSON answer."""
    done = subprocess.run(
        exec_argv(world.client.netns, [PY, "-c", CLIENT, url], uid=uid, gid=uid),
        capture_output=True,
        text=True,
        timeout=15,
    )
    assert done.returncode == 0, f"GET {url} failed: {done.stderr}"
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def new_records(world: World, pod: PodNetwork, before: int, expect: int) -> list[dict[str, Any]]:
    """Records the pod's fake Envoy wrote after index `before`, waiting for `expect` of them."""
    deadline = time.monotonic() + (3 if expect else 0.3)
    while True:
        found = world.records(pod)[before:]
        if (expect and len(found) >= expect) or time.monotonic() >= deadline:
            return found
        time.sleep(0.02)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    root_before = root_snapshot()
    loop = asyncio.new_event_loop()
    net = MeshNetwork(NetworkConfig(mesh="it" + uuid.uuid4().hex[:8]))
    processes: list[PodProcess] = []
    try:
        loop.run_until_complete(net.ensure())
        client = loop.run_until_complete(net.add_pod("client"))
        server = loop.run_until_complete(net.add_pod("server"))
        w = World(loop, net, client, server, root_before, processes)
        names = ["server", "server.default", "server.default.svc.cluster.local"]
        for name in ("client", "server"):
            w.call(net.write_hosts(name, {server.ip: names, client.ip: ["client"]}))
        app = w.spawn(server, [PY, "-c", APP, "server", "8080", "9090", "9091"])
        local = w.spawn(client, [PY, "-c", APP, "client-local", "7070"])
        for pod in (client, server):
            w.envoys[pod.pod] = w.spawn(pod, [PY, "-c", FAKE_ENVOY], uid=PROXY)
        for process in (app, local, *w.envoys.values()):
            process.wait_for("ready")
        yield w
    finally:
        try:
            loop.run_until_complete(net.teardown())
        finally:
            for process in processes:
                process.stop()
            loop.close()


@pytest.fixture
def capture(world: World) -> Iterator[None]:
    """Capture in both pods: A skips outbound port 9090, B skips inbound port 9091."""
    prefix = world.net.chain_prefix
    client_rules = CaptureConfig(chain_prefix=prefix, exclude_outbound_ports=(9090,))
    server_rules = CaptureConfig(chain_prefix=prefix, exclude_inbound_ports=(9091,))
    world.call(world.net.apply_capture("client", render_rules(client_rules)))
    world.call(world.net.apply_capture("server", render_rules(server_rules)))
    yield
    for pod in ("client", "server"):
        world.call(world.net.apply_capture(pod, "*nat\nCOMMIT\n"))


def in_pod(pod: PodNetwork, *argv: str) -> str:
    return run_sync(exec_argv(pod.netns, argv)).text


def test_pods_have_only_mesh_routes(world: World) -> None:
    net, client, server = world.net, world.client, world.server
    assert [p.pod for p in world.call(net.pods())] == ["client", "server"]
    assert client.ip != server.ip
    routes = json.loads(in_pod(client, "ip", "-j", "route"))
    assert {(r["dst"], r.get("gateway")) for r in routes} == {
        ("10.44.0.0/16", None),
        ("10.96.0.0/16", "10.44.0.1"),
    }
    node_routes = json.loads(run_sync(["ip", "-n", net.node_netns, "-j", "route"]).text)
    assert [r["dst"] for r in node_routes] == ["10.44.0.0/16"]
    assert in_pod(client, "ip", "-6", "addr").strip() == ""  # IPv6 can not bypass capture
    ports = json.loads(
        run_sync(["ip", "-n", net.node_netns, "-j", "link", "show", "master", net.bridge]).text
    )
    assert sorted(p["ifname"] for p in ports) == sorted([client.veth, server.veth])
    assert {p["ifalias"] for p in ports} == {"client", "server"}


def test_client_reaches_server_by_ip_and_by_name(world: World) -> None:
    for host in (world.server.ip, "server", "server.default.svc.cluster.local"):
        answer = request(world, f"http://{host}:8080/")
        assert answer == {"server": "server", "port": 8080, "peer": world.client.ip}
    resolv = (ETC_NETNS / world.client.netns / "resolv.conf").read_text()
    assert "nameserver" not in resolv


def test_hosts_update_reaches_a_running_process(world: World) -> None:
    reader = world.spawn(world.client, [PY, "-c", HOSTS_READER])
    world.call(world.net.write_hosts("client", {world.server.ip: ["server", "late-service"]}))
    assert reader.proc.stdin is not None
    reader.proc.stdin.write("read\n")
    reader.proc.stdin.flush()
    reader.wait_for("late-service")
    names = ["server", "server.default", "server.default.svc.cluster.local"]
    world.call(world.net.write_hosts("client", {world.server.ip: names}))


def test_outbound_is_redirected_to_15001_with_the_original_destination(
    world: World, capture: None
) -> None:
    client, server = world.client, world.server
    a, b = len(world.records(client)), len(world.records(server))
    answer = request(world, "http://server:8080/")
    # B's app was reached through B's inbound proxy, which connects from 127.0.0.6.
    assert answer == {"server": "server", "port": 8080, "peer": "127.0.0.6"}
    # Exactly one capture each: the proxies' own connections (uid 1337, 127.0.0.6) are not.
    assert new_records(world, client, a, 1) == [
        {"listener": 15001, "dst": f"{server.ip}:8080", "peer": client.ip}
    ]
    assert new_records(world, server, b, 1) == [
        {"listener": 15006, "dst": f"{server.ip}:8080", "peer": client.ip}
    ]


def test_excluded_ports_are_not_captured(world: World, capture: None) -> None:
    client, server = world.client, world.server
    a, b = len(world.records(client)), len(world.records(server))
    # excludeOutboundPorts 9090 in A: straight out of A, captured by B's inbound.
    assert request(world, f"http://{server.ip}:9090/")["peer"] == "127.0.0.6"
    assert new_records(world, client, a, 0) == []
    assert new_records(world, server, b, 1)[0]["dst"] == f"{server.ip}:9090"
    # excludeInboundPorts 9091 in B: A's outbound captures it, B's inbound does not.
    b = len(world.records(server))
    assert request(world, f"http://{server.ip}:9091/")["peer"] == client.ip
    assert new_records(world, client, a, 1)[0]["dst"] == f"{server.ip}:9091"
    assert new_records(world, server, b, 0) == []


def test_proxy_traffic_and_loopback_are_not_redirected(world: World, capture: None) -> None:
    client, server = world.client, world.server
    a, b = len(world.records(client)), len(world.records(server))
    # The proxy's own outbound connection (uid 1337) leaves A as is; 9091 skips B's capture.
    assert request(world, f"http://{server.ip}:9091/", uid=PROXY)["peer"] == client.ip
    # The app calling itself over loopback, or by its own pod IP, is left alone.
    assert request(world, "http://127.0.0.1:7070/")["server"] == "client-local"
    assert request(world, f"http://{client.ip}:7070/")["peer"] == client.ip
    assert new_records(world, client, a, 0) == []
    assert new_records(world, server, b, 0) == []


def test_proxy_calling_its_own_pod_ip_goes_to_inbound(world: World, capture: None) -> None:
    client = world.client
    a = len(world.records(client))
    answer = request(world, f"http://{client.ip}:7070/", uid=PROXY)
    assert answer == {"server": "client-local", "port": 7070, "peer": "127.0.0.6"}
    assert new_records(world, client, a, 1) == [
        {"listener": 15006, "dst": f"{client.ip}:7070", "peer": client.ip}
    ]


@pytest.mark.parametrize("golden", sorted(GOLDEN.glob("*.golden.rules")), ids=lambda p: p.stem)
def test_golden_rules_load_into_a_pod(world: World, golden: Path) -> None:
    try:
        world.call(world.net.apply_capture("server", golden.read_text()))
        saved = in_pod(world.server, "iptables-save", "-t", "nat")
        prefix = golden.read_text().splitlines()[0].split("chains ")[1].removesuffix("*")
        assert f":{prefix}OUTPUT" in saved and "--to-ports 15001" in saved
    finally:
        world.call(world.net.apply_capture("server", "*nat\nCOMMIT\n"))


def test_restart_sees_existing_pods(world: World) -> None:
    again = MeshNetwork(world.net.config)  # a restarted daemon: no memory of the first
    assert world.call(again.pods()) == [world.client, world.server]
    world.call(again.ensure())
    assert world.call(again.add_pod("client")) == world.client
    with pytest.raises(NetworkConfigError, match="already has IP"):
        world.call(again.add_pod("client", ip="10.44.0.200"))
    third = world.call(again.add_pod("third", ip="10.44.0.200"))
    assert third.ip == "10.44.0.200"
    fourth = world.call(again.add_pod("fourth"))
    assert fourth.ip not in {world.client.ip, world.server.ip, third.ip}
    for pod in (third, fourth):
        world.call(again.remove_pod(pod.pod))
        assert pod.netns not in existing_netns()
        assert not (ETC_NETNS / pod.netns).exists()
    world.call(again.remove_pod("fourth"))  # already gone: fine
    links = run_sync(["ip", "-n", world.net.node_netns, "-j", "link"]).text
    assert third.veth not in links and fourth.veth not in links


def test_failed_add_pod_rolls_back_and_names_the_command(world: World) -> None:
    net = world.net
    veth = veth_name(net.mesh, "broken")
    # Occupy the veth's name in the node namespace so creating the veth fails half way.
    run_sync(["ip", "-n", net.node_netns, "link", "add", veth, "type", "bridge"])
    with pytest.raises(CommandFailed) as caught:
        world.call(net.add_pod("broken"))
    assert "-batch" in str(caught.value) and "exit code" in str(caught.value)
    assert net.netns_of("broken") not in existing_netns()
    assert not (ETC_NETNS / net.netns_of("broken")).exists()
    assert veth not in run_sync(["ip", "-n", net.node_netns, "-j", "link"]).text
    with pytest.raises(NetworkConfigError, match="tear the mesh down first"):
        world.call(MeshNetwork(NetworkConfig(mesh=net.mesh, pod_cidr="10.45.0.0/16")).ensure())


def test_teardown_removes_everything_and_root_is_untouched(world: World) -> None:
    prefix = f"{world.net.mesh}-"
    leftover = world.spawn(world.server, ["sleep", "60"])  # as if the daemon had crashed
    (ETC_NETNS / f"{prefix}ghost").mkdir(parents=True)
    crashed = MeshNetwork(world.net.config)
    world.call(crashed.teardown())
    assert [n for n in existing_netns() if n.startswith(prefix)] == []
    assert prefix not in run_sync(["ip", "netns", "list"]).text
    assert list(ETC_NETNS.glob(f"{prefix}*")) == []
    leftover.proc.wait(timeout=5)
    assert not any(p.alive() for p in world.processes)
    world.call(crashed.teardown())  # idempotent
    assert root_snapshot() == world.root_before
