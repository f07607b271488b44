"""The sidecar agent as a process, against a real isthmusd and the real Envoy it starts.

Every agent binds its admin, readiness and stats ports to free loopback ports, so
several can run side by side; each is stopped (and its Envoy checked gone) however a
test ends. Configured Envoys run as the agent's user (--no-proxy-user): in the root
network namespace a uid-1337 Envoy would hold the capture ports 15001/15006 against
every root-owned test Envoy (SO_REUSEPORT shares a port only within one uid), so the
test of the proxy user runs an Envoy that never receives listeners.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from isthmus.testing.daemon import DaemonProcess, wait_for
from isthmus.testing.exposition import problems
from isthmus.testing.ports import LOOPBACK, free_port

pytestmark = pytest.mark.envoy

NAMESPACE = "default"
SERVICE = f"""
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: {NAMESPACE}}}
spec:
  selector: {{app: web}}
  ports:
  - {{name: http, port: 8080}}
"""
DRAIN_S = 2.0


def _children(pid: int) -> list[int]:
    """Pids whose parent is `pid` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces; ppid follows the state.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class Agent:
    """`python -m isthmus.agent` for one pod, with its ports and log."""

    def __init__(
        self,
        workroot: Path,
        xds_socket: Path,
        pod: str,
        *,
        switch_user: bool = False,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.pod = pod
        self.switch_user = switch_user
        self.extra_args = extra_args
        self.workdir = workroot / pod
        self.xds_socket = xds_socket
        self.admin_port = free_port()
        self.readiness_port = free_port()
        self.stats_port = free_port()
        self.metrics_port = free_port()
        self.log_path = workroot / f"{pod}.agent.log"
        self.node_id = f"sidecar~127.0.0.1~{pod}.{NAMESPACE}~{NAMESPACE}.svc.cluster.local"
        self.process: subprocess.Popen[bytes] | None = None
        self.envoy_pids: set[int] = set()

    def start(self) -> Agent:
        command = [
            sys.executable,
            "-m",
            "isthmus.agent",
            *("--pod", self.pod, "--namespace", NAMESPACE, "--ip", LOOPBACK),
            *("--labels", json.dumps({"app": "web", "version": "v1"})),
            *("--service-account", "web", "--workload", "web", "--inbound-ports", "8080"),
            *("--xds-socket", str(self.xds_socket), "--workdir", str(self.workdir)),
            *("--concurrency", "1", "--drain-duration", f"{DRAIN_S}s"),
            *("--admin-port", str(self.admin_port), "--readiness-port", str(self.readiness_port)),
            *("--stats-port", str(self.stats_port), "--listen-address", LOOPBACK),
            *("--metrics-port", str(self.metrics_port)),
            *([] if self.switch_user else ["--no-proxy-user"]),
            *self.extra_args,
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stderr=log, start_new_session=True
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def readiness(self) -> tuple[int | None, str]:
        try:
            response = httpx.get(
                f"http://{LOOPBACK}:{self.readiness_port}/healthz/ready", timeout=3
            )
        except httpx.TransportError as error:
            return None, repr(error)
        return response.status_code, response.text.strip()

    def admin(self, path: str) -> str:
        return httpx.get(f"http://{LOOPBACK}:{self.admin_port}{path}", timeout=3).text.strip()

    def wait_readiness(self, status: int, timeout: float = 15.0) -> None:
        last: list[tuple[int | None, str]] = []

        def reached() -> bool:
            last[:] = [self.readiness()]
            return last[0][0] == status

        try:
            wait_for(reached, timeout=timeout, what=f"readiness {status}")
        except TimeoutError:
            raise AssertionError(f"readiness {last}, agent log:\n{self.log_text()}") from None

    def envoy_pid(self, timeout: float = 10.0) -> int:
        """The Envoy the agent runs now."""
        found: list[int] = []

        def started() -> bool:
            found[:] = [pid for pid in _children(self.pid) if _alive(pid)]
            return bool(found)

        wait_for(started, timeout=timeout, what="an envoy child of the agent")
        self.envoy_pids.update(found)
        return found[0]

    def stop(self) -> None:
        """Kill the agent (if still there) and make sure no Envoy of it survives."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        for pid in self.envoy_pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def workroot() -> Iterator[Path]:
    # Envoy runs as uid 1337 when the tests run as root: it must reach the work dirs.
    root = Path(tempfile.mkdtemp(prefix="isthmus-agent-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def daemon(workroot: Path) -> Iterator[DaemonProcess]:
    process = DaemonProcess(workroot / "home").start()
    try:
        process.apply(SERVICE)
        yield process
    finally:
        process.stop()


@pytest.fixture
def agents(workroot: Path) -> Iterator[Callable[[Path, str], Agent]]:
    started: list[Agent] = []

    def start(xds_socket: Path, pod: str) -> Agent:
        agent = Agent(workroot, xds_socket, pod)
        started.append(agent)
        return agent.start()

    try:
        yield start
    finally:
        for agent in started:
            agent.stop()


@pytest.fixture(scope="module")
def ready_agent(workroot: Path, daemon: DaemonProcess) -> Iterator[Agent]:
    agent = Agent(workroot, daemon.xds_socket, "web-shared").start()
    try:
        agent.wait_readiness(200)
        yield agent
    finally:
        agent.stop()


def test_ready_only_once_the_control_plane_has_configured_envoy(
    workroot: Path, agents: Callable[[Path, str], Agent]
) -> None:
    home = workroot / "late-home"
    late = DaemonProcess(home)
    agent = agents(late.xds_socket, "web-early")
    try:
        agent.wait_readiness(503)
        answers = []
        for _ in range(10):
            answers.append(agent.readiness())
            time.sleep(0.05)
        assert all(status == 503 for status, _ in answers), answers
        assert agent.admin("/ready") != "LIVE"

        late.start()
        late.apply(SERVICE)
        agent.wait_readiness(200)
        assert agent.readiness() == (200, "ready")
        assert [p["node_id"] for p in late.proxies()] == [agent.node_id]
    finally:
        late.stop()


def test_stats_port_serves_prometheus_text_and_nothing_else(ready_agent: Agent) -> None:
    base = f"http://{LOOPBACK}:{ready_agent.stats_port}"
    response = httpx.get(base + "/stats/prometheus", timeout=5)
    assert response.status_code == 200
    assert "# TYPE envoy_listener_manager_lds_update_success counter" in response.text
    assert httpx.get(base + "/config_dump", timeout=5).status_code == 404


APP_METRICS = b"# TYPE app_orders_total counter\napp_orders_total 5\n"


class _AppMetrics(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = 200 if self.path == "/metrics" else 404
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(APP_METRICS if status == 200 else b"")

    def log_message(self, *_args: object) -> None:
        return


def test_metrics_port_merges_envoys_the_agents_and_the_apps_metrics(
    daemon: DaemonProcess, workroot: Path
) -> None:
    app = http.server.ThreadingHTTPServer((LOOPBACK, 0), _AppMetrics)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    annotations = json.dumps({"scrape": "true", "port": str(app.server_address[1])})
    agent = Agent(
        workroot,
        daemon.xds_socket,
        "web-metrics",
        extra_args=("--prometheus-annotations", annotations),
    )
    try:
        agent.start()
        agent.wait_readiness(200)
        response = httpx.get(f"http://{LOOPBACK}:{agent.metrics_port}/stats/prometheus", timeout=5)
        assert response.status_code == 200
        text = response.text
        assert problems(text) == [], text
        assert "# TYPE envoy_listener_manager_lds_update_success counter" in text
        assert "istio_agent_scrapes_total 1\n" in text
        assert "isthmus_agent_envoy_restarts_total 0\n" in text
        assert "istio_agent_process_resident_memory_bytes " in text
        assert text.endswith("# TYPE app_orders_total counter\napp_orders_total 5\n")
    finally:
        agent.stop()
        app.shutdown()
        app.server_close()


@pytest.mark.skipif(os.geteuid() != 0, reason="Envoy keeps the agent's uid unless it is root")
def test_envoy_runs_as_the_proxy_user_and_reaches_its_files(workroot: Path) -> None:
    # No control plane: this Envoy never gets (and never binds) the capture listeners.
    agent = Agent(workroot, workroot / "no-control-plane.sock", "web-1337", switch_user=True)
    try:
        agent.start()
        pid = agent.envoy_pid()
        # Between fork and exec the child is still the agent's (root) copy: wait for Envoy.
        wait_for(
            lambda: Path(f"/proc/{pid}/comm").read_text().strip() == "envoy",
            timeout=10,
            what="the child to become Envoy",
        )
        status = Path(f"/proc/{pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        assert fields["Uid"].split() == ["1337"] * 4
        assert fields["Gid"].split() == ["1337"] * 4
        assert fields["Groups"].split() == []
        # It read its bootstrap, writes its log and connects to the agent's xDS socket.
        wait_for(lambda: "xds_upstream_unavailable" in agent.log_text(), what="an xDS connect")
        assert agent.admin("/ready") == "PRE_INITIALIZING"
        assert (agent.workdir / "envoy.log").stat().st_size > 0
        assert agent.readiness()[0] == 503
    finally:
        agent.stop()


def test_envoy_killed_with_sigkill_is_restarted_and_ready_again(ready_agent: Agent) -> None:
    first = ready_agent.envoy_pid()
    os.kill(first, signal.SIGKILL)
    ready_agent.wait_readiness(503, timeout=5)
    wait_for(lambda: not _alive(first), timeout=5, what="the killed envoy to be reaped")
    second = ready_agent.envoy_pid()
    assert second != first
    ready_agent.wait_readiness(200)
    assert f"envoy_exited pid={first} signal=SIGKILL" in ready_agent.log_text()


def test_sigterm_drains_then_exits_leaving_no_envoy(
    daemon: DaemonProcess, agents: Callable[[Path, str], Agent]
) -> None:
    agent = agents(daemon.xds_socket, "web-drained")
    agent.wait_readiness(200)
    envoy = agent.envoy_pid()
    assert agent.process is not None

    agent.process.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    agent.wait_readiness(503, timeout=2)
    # Health checks fail and the listeners drain while Envoy keeps running.
    assert agent.admin("/ready") == "DRAINING"
    time.sleep(DRAIN_S / 2)
    assert _alive(envoy)
    assert agent.readiness()[0] == 503

    code = agent.process.wait(DRAIN_S + 5)
    elapsed = time.monotonic() - sent
    assert code == 0, agent.log_text()
    assert DRAIN_S - 0.2 <= elapsed <= DRAIN_S + 4
    assert not _alive(envoy)
    assert "envoy_stopped" in agent.log_text()


def test_killed_agent_takes_its_envoy_along(
    daemon: DaemonProcess, agents: Callable[[Path, str], Agent]
) -> None:
    agent = agents(daemon.xds_socket, "web-orphan")
    envoy = agent.envoy_pid()
    assert agent.process is not None
    agent.process.kill()
    agent.process.wait(5)
    wait_for(lambda: not _alive(envoy), timeout=5, what="envoy to die with its agent")


def test_bad_flags_are_one_error_line_and_exit_1() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "isthmus.agent", "--pod", "web-1", "--labels", "[]"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("error agent invalid_arguments error=")
    assert "--namespace" in line


def test_taken_readiness_port_fails_setup_before_envoy_starts(
    daemon: DaemonProcess, workroot: Path
) -> None:
    agent = Agent(workroot, daemon.xds_socket, "web-port-taken")
    with socket.socket() as taken:
        taken.bind((LOOPBACK, agent.readiness_port))
        taken.listen()
        agent.start()
        assert agent.process is not None
        try:
            assert agent.process.wait(30) == 1
        finally:
            agent.stop()
    assert f'error agent setup_failed error="readiness port {LOOPBACK}:' in agent.log_text()
    assert "envoy_started" not in agent.log_text()
