"""A test mesh: one isthmusd, one sidecar Envoy with the explicit HTTP proxy listener, and
upstream HTTP servers registered as WorkloadEntries. Used by integration tests and benches."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from isthmus.testing.daemon import DaemonProcess, wait_for
from isthmus.testing.envoy import EnvoyProcess
from isthmus.testing.load import LoadResult, run_requests
from isthmus.testing.upstream import UpstreamServer

NAMESPACE = "production"


@dataclass
class Mesh:
    daemon: DaemonProcess
    sidecar: EnvoyProcess
    proxy_port: int
    workdir: Path
    upstreams: list[UpstreamServer] = field(default_factory=list)

    @property
    def proxy(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}"

    def apply(self, text: str) -> None:
        self.daemon.apply(text)

    def upstream(self, name: str) -> UpstreamServer:
        server = UpstreamServer(name).start()
        self.upstreams.append(server)
        return server

    def service(self, name: str, *, port: int = 8080, protocol_name: str = "http") -> str:
        """A Kubernetes Service `name` selecting app=name."""
        return f"""
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {NAMESPACE}}}
spec:
  selector: {{app: {name}}}
  ports:
  - {{name: {protocol_name}, port: {port}}}
---
"""

    def workload(
        self, app: str, server: UpstreamServer, version: str = "v1", port_name: str = "http"
    ) -> str:
        """A WorkloadEntry registering `server` as an endpoint of app=`app`."""
        return f"""
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: {server.name}, namespace: {NAMESPACE}}}
spec:
  address: 127.0.0.1
  labels: {{app: {app}, version: {version}}}
  ports: {{{port_name}: {server.port}}}
---
"""

    def get(
        self,
        host: str,
        count: int = 1,
        concurrency: int = 1,
        headers: dict[str, str] | None = None,
        path: str = "/",
        timeout: float = 10.0,
    ) -> LoadResult:
        return run_requests(
            f"http://{host}{path}",
            count,
            concurrency,
            headers=headers,
            proxy=self.proxy,
            timeout=timeout,
        )

    def wait_routed(
        self, host: str, upstream: str, headers: dict[str, str] | None = None, timeout: float = 10.0
    ) -> None:
        """Until a request to `host` is answered by `upstream` (config has reached Envoy)."""
        wait_for(
            lambda: self.get(host, headers=headers).upstreams.get(upstream, 0) == 1,
            timeout=timeout,
            what=f"{host} routed to {upstream}",
        )
