"""A real isthmusd for tests: started as a subprocess on a temporary home, driven over
its unix-socket HTTP API, and sidecar Envoys bootstrapped to its ADS socket."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from isthmus.testing.envoy import EnvoyProcess, ads_bootstrap


class DaemonError(RuntimeError):
    pass


class DaemonProcess:
    """`python -m isthmus.daemon --home HOME` with helpers to apply config and read status."""

    def __init__(
        self, home: Path, *, debounce: float = 0.05, extra_args: Sequence[str] = ()
    ) -> None:
        self.home = Path(home)
        self.home.mkdir(parents=True, exist_ok=True)
        self.debounce = debounce
        self.extra_args = list(extra_args)
        self._process: subprocess.Popen[bytes] | None = None
        self._client: httpx.Client | None = None

    @property
    def socket(self) -> Path:
        return self.home / "isthmusd.sock"

    @property
    def xds_socket(self) -> Path:
        return self.home / "xds.sock"

    @property
    def zipkin_socket(self) -> Path:
        """The embedded Zipkin collector (POST /api/v2/spans, and the query API)."""
        return self.home / "zipkin.sock"

    @property
    def log_path(self) -> Path:
        return self.home / "isthmusd.out"

    def start(self, timeout: float = 15.0) -> DaemonProcess:
        command = [
            sys.executable,
            "-m",
            "isthmus.daemon",
            "--home",
            str(self.home),
            "--debounce",
            str(self.debounce),
            *self.extra_args,
        ]
        out = self.log_path.open("ab")
        self._process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise DaemonError(
                    f"isthmusd exited {self._process.returncode}: {self.log_text()[-2000:]}"
                )
            if self.socket.exists() and self._healthy():
                return self
            time.sleep(0.05)
        raise DaemonError(f"isthmusd did not become healthy: {self.log_text()[-2000:]}")

    def _healthy(self) -> bool:
        """GET /v1/healthz over a plain socket (a stale socket file refuses the connect)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2.0)
            try:
                sock.connect(str(self.socket))
                sock.sendall(b"GET /v1/healthz HTTP/1.0\r\nHost: isthmusd\r\n\r\n")
                head = sock.recv(32)
            except OSError:
                return False
        return head.split(b" ", 2)[1:2] == [b"200"]

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(
                transport=httpx.HTTPTransport(uds=str(self.socket)),
                base_url="http://isthmusd",
                timeout=30,
            )
        return self._client

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def apply(
        self, text: str, source: str = "test.yaml", dry_run: bool = False
    ) -> list[dict[str, Any]]:
        response = self.client.post(
            "/v1/apply", json={"documents": [{"source": source, "text": text}], "dryRun": dry_run}
        )
        body = response.json()
        if response.status_code != 200:
            raise DaemonError("\n".join(body.get("errors", [response.text])))
        return list(body.get("results", body.get("objects", [])))

    def proxies(self) -> list[dict[str, Any]]:
        return list(self.client.get("/v1/proxies").json()["proxies"])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        proc = self._process
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def __enter__(self) -> DaemonProcess:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def node_id(ip: str, pod: str, namespace: str) -> str:
    return f"sidecar~{ip}~{pod}.{namespace}~{namespace}.svc.cluster.local"


def start_sidecar(
    daemon: DaemonProcess,
    workdir: Path,
    *,
    pod: str,
    namespace: str,
    http_proxy_port: int,
    labels: Mapping[str, str] | None = None,
    delta: bool = False,
    concurrency: int = 1,
    runtime: Mapping[str, Any] | None = None,
    locality: Mapping[str, str] | None = None,
) -> EnvoyProcess:
    """An Envoy configured only over ADS by `daemon`, with the explicit HTTP proxy listener
    on 127.0.0.1:http_proxy_port (Istio's proxyHttpPort) so tests need no iptables.
    `locality` (region, zone, sub_zone) is the node's, which isthmusd takes as the proxy's
    when its labels name none (as istiod does)."""
    metadata = {
        "NAMESPACE": namespace,
        "LABELS": dict(labels or {}),
        "SERVICE_ACCOUNT": "default",
        "WORKLOAD_NAME": pod,
        "PROXY_HTTP_PORT": str(http_proxy_port),
        # No iptables here: bind no capture listeners on the host's 15001/15006.
        "INTERCEPTION_MODE": "NONE",
    }
    bootstrap = ads_bootstrap(
        node_id("127.0.0.1", pod, namespace),
        f"{pod}.{namespace}",
        metadata,
        str(daemon.xds_socket),
        delta=delta,
        runtime=runtime,
    )
    if locality:
        bootstrap["node"]["locality"] = dict(locality)
    return EnvoyProcess(bootstrap, workdir, name=pod, concurrency=concurrency)


def wait_for(
    predicate: Any, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
