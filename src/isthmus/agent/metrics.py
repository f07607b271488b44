"""The pod's merged metrics endpoint (Istio's pilot-agent on :15020, /stats/prometheus).

One scrape returns, in this order:
- Envoy's own Prometheus output, read from its admin API (the query string, e.g.
  `?filter=...`, is passed on as Istio does), with Istio's standard metrics under Istio's
  names (`istio_requests_total`, ...; agent.metrics_merge);
- the agent's own metrics, with pilot-agent's names where Istio has them
  (`istio_agent_scrapes_total`, `istio_agent_scrape_failures_total{type}`,
  `istio_agent_cert_expiry_seconds{resource_name="default"}`, `istio_agent_process_*`)
  and `isthmus_agent_envoy_restarts_total`;
- the application's own metrics when the pod asked for them (`prometheus.io/scrape` on
  its template, handed over as Istio's ISTIO_PROMETHEUS_ANNOTATIONS), scraped inside the
  pod at 127.0.0.1:PORT/PATH. A failing application scrape adds nothing, is logged and
  counted, and never costs Envoy's part.

Envoy's admin API not answering makes the whole scrape fail with 503 and the reason. Work
happens per scrape only, never per request; the text work runs off the event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import aiohttp
from aiohttp import web

from isthmus.agent import _log
from isthmus.agent.admin import AdminUnavailable, EnvoyAdmin
from isthmus.agent.certificate_manager import STATUS_FILE_NAME
from isthmus.agent.http_site import start_site
from isthmus.agent.metrics_merge import (
    Family,
    Merged,
    escape_label_value,
    format_value,
    merge,
    parse_families,
)
from isthmus.sidecar_status import read_envoy_restarts

METRICS_PORT = 15020
METRICS_PATHS = ("/stats/prometheus", "/metrics")  # Istio serves both
PROMETHEUS_ANNOTATIONS_ENV = "ISTIO_PROMETHEUS_ANNOTATIONS"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
APP_ACCEPT = "text/plain;version=0.0.4;q=1,*/*;q=0.1"
APP_SCRAPE_TIMEOUT_S = 5.0
MAX_APP_BYTES = 16 * 1024 * 1024
CERTIFICATE_RESOURCE = "default"  # Istio's SDS name of the workload certificate
SCRAPE_TYPES = ("envoy", "application", "agent")


@dataclass(frozen=True)
class AppScrape:
    """Where the application serves its metrics inside the pod."""

    port: int
    path: str = "/metrics"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"


def app_scrape(config: str, metrics_port: int = METRICS_PORT) -> AppScrape | None:
    """Istio's reading of ISTIO_PROMETHEUS_ANNOTATIONS (`{"scrape", "path", "port"}`, as
    strings): nothing when scrape is "false"; path /metrics and port 80 by default; the
    agent's own port is refused (it would scrape itself). Raises ValueError."""
    try:
        document = json.loads(config)
    except ValueError as error:
        raise ValueError(f"not JSON: {error}") from None
    if not isinstance(document, dict) or not all(
        isinstance(document.get(k, ""), str) for k in ("scrape", "path", "port")
    ):
        raise ValueError('must be a JSON object with string fields "scrape", "path", "port"')
    if document.get("scrape") == "false":
        return None
    port_text = document.get("port") or "80"
    if not (port_text.isascii() and port_text.isdigit() and 1 <= int(port_text) <= 65535):
        raise ValueError(f"port {port_text!r} is not a port number")
    port = int(port_text)
    if port == metrics_port:
        raise ValueError(
            f"the application's port is the agent's own metrics port {metrics_port}: it "
            "would scrape itself"
        )
    path = document.get("path") or "/metrics"
    return AppScrape(port, path if path.startswith("/") else "/" + path)


# --- the agent's own metrics ---------------------------------------------------------


@dataclass(frozen=True)
class ProcessFacts:
    """The agent process as the kernel sees it (Prometheus' process collector)."""

    cpu_seconds: float
    resident_bytes: int
    virtual_bytes: int
    start_time: float
    open_fds: int
    max_fds: int


def process_facts() -> ProcessFacts:
    """Read from /proc/self; the agent's own CPU, not its children's (Envoy's)."""
    times = os.times()
    page = os.sysconf("SC_PAGE_SIZE")
    virtual_pages, resident_pages = Path("/proc/self/statm").read_text().split()[:2]
    stat = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    boot_time = next(
        float(line.split()[1])
        for line in Path("/proc/stat").read_text().splitlines()
        if line.startswith("btime ")
    )
    start = boot_time + int(stat[19]) / os.sysconf("SC_CLK_TCK")  # field 22, starttime
    return ProcessFacts(
        cpu_seconds=times.user + times.system,
        resident_bytes=int(resident_pages) * page,
        virtual_bytes=int(virtual_pages) * page,
        start_time=start,
        open_fds=len(os.listdir("/proc/self/fd")),
        max_fds=resource.getrlimit(resource.RLIMIT_NOFILE)[0],
    )


def certificate_expiry(workdir: Path, now: float) -> float | None:
    """Seconds until the workload certificate expires (negative once expired), from the
    status file the certificate manager writes; None without a certificate."""
    try:
        status = json.loads((workdir / STATUS_FILE_NAME).read_text())
        not_after = status.get("not_after") if isinstance(status, dict) else None
        if not isinstance(not_after, str):
            return None
        return datetime.fromisoformat(not_after.replace("Z", "+00:00")).timestamp() - now
    except (OSError, ValueError):
        return None


@dataclass
class ScrapeCounters:
    scrapes: int = 0
    failures: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SCRAPE_TYPES, 0))


@dataclass(frozen=True)
class AgentFacts:
    counters: ScrapeCounters
    process: ProcessFacts | None
    certificate_expiry: float | None
    envoy_restarts: int


def _family(name: str, kind: str, help_text: str, *samples: tuple[str, float]) -> Family:
    return Family(
        name, kind, help_text, [f"{name}{labels} {format_value(v)}" for labels, v in samples]
    )


def agent_families(facts: AgentFacts) -> list[Family]:
    """The agent's own families (pilot-agent's names, prefixed `istio_agent_`)."""
    counters = facts.counters
    families = [
        _family(
            "istio_agent_scrapes_total",
            "counter",
            "The total number of scrapes.",
            ("", counters.scrapes),
        ),
        _family(
            "istio_agent_scrape_failures_total",
            "counter",
            "The total number of failed scrapes.",
            *((f'{{type="{t}"}}', counters.failures[t]) for t in SCRAPE_TYPES),
        ),
        _family(
            "isthmus_agent_envoy_restarts_total",
            "counter",
            "Times the agent restarted Envoy in this pod (over agent restarts).",
            ("", facts.envoy_restarts),
        ),
    ]
    if facts.certificate_expiry is not None:
        label = f'{{resource_name="{escape_label_value(CERTIFICATE_RESOURCE)}"}}'
        families.append(
            _family(
                "istio_agent_cert_expiry_seconds",
                "gauge",
                "The time remaining, in seconds, before the certificate chain will expire. "
                "A negative value indicates the cert is expired.",
                (label, round(facts.certificate_expiry, 3)),
            )
        )
    process = facts.process
    if process is not None:
        families += [
            _family(
                "istio_agent_process_cpu_seconds_total",
                "counter",
                "Total user and system CPU time spent in seconds.",
                ("", round(process.cpu_seconds, 3)),
            ),
            _family(
                "istio_agent_process_resident_memory_bytes",
                "gauge",
                "Resident memory size in bytes.",
                ("", process.resident_bytes),
            ),
            _family(
                "istio_agent_process_virtual_memory_bytes",
                "gauge",
                "Virtual memory size in bytes.",
                ("", process.virtual_bytes),
            ),
            _family(
                "istio_agent_process_start_time_seconds",
                "gauge",
                "Start time of the process since unix epoch in seconds.",
                ("", round(process.start_time, 2)),
            ),
            _family(
                "istio_agent_process_open_fds",
                "gauge",
                "Number of open file descriptors.",
                ("", process.open_fds),
            ),
            _family(
                "istio_agent_process_max_fds",
                "gauge",
                "Maximum number of open file descriptors.",
                ("", process.max_fds),
            ),
        ]
    return families


# --- the endpoint --------------------------------------------------------------------


class EnvoyScrapeFailed(RuntimeError):
    """Envoy's admin API gave no metrics; the message says why."""


@dataclass(frozen=True)
class ScrapeResult:
    status: int
    merged: Merged | None = None  # the metrics (200)
    reason: str = ""  # why not (503)


class MetricsServer:
    """HTTP server on `host:port` answering METRICS_PATHS with the merged metrics."""

    def __init__(
        self,
        admin: EnvoyAdmin,
        host: str,
        port: int,
        *,
        workdir: Path,
        app: AppScrape | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.app = app
        self.counters = ScrapeCounters()
        self._admin = admin
        self._workdir = workdir
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._app_error: str | None = None
        self._dropped: set[str] = set()
        self._rejected_logged = False

    async def start(self) -> None:
        app = web.Application()
        for path in METRICS_PATHS:
            app.router.add_get(path, self._handle)
        self._runner = await start_site(app, self.host, self.port)
        _log.log(
            logging.INFO,
            "metrics_listening",
            address=f"{self.host}:{self.port}",
            path=METRICS_PATHS[0],
            app=self.app.url if self.app else "-",
        )

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        result = await self.scrape(request.rel_url.raw_query_string)
        if result.merged is None:
            return web.Response(status=result.status, text=result.reason)
        # Written as the parts it is made of: Envoy's text is never copied into one piece.
        response = web.StreamResponse(headers={"Content-Type": CONTENT_TYPE})
        response.content_length = result.merged.size
        await response.prepare(request)
        for part in result.merged.parts:
            await response.write(part)
        await response.write_eof()
        return response

    async def scrape(self, query: str = "") -> ScrapeResult:
        """One merged scrape: 200 and the text, or 503 and why Envoy gave nothing."""
        self.counters.scrapes += 1
        envoy, app = await asyncio.gather(
            self._envoy_text(query), self._app_text(), return_exceptions=True
        )
        if isinstance(envoy, BaseException):
            self.counters.failures["envoy"] += 1
            if not isinstance(envoy, EnvoyScrapeFailed):
                raise envoy
            return ScrapeResult(503, reason=f"envoy metrics unavailable: {envoy}\n")
        if isinstance(app, BaseException):
            raise app
        merged = await asyncio.to_thread(self._merge, envoy, app)
        for name in merged.dropped:
            if name not in self._dropped:
                self._dropped.add(name)
                _log.log(logging.WARNING, "app_metrics_family_dropped", family=name)
        return ScrapeResult(200, merged)

    def _merge(self, envoy: bytes, app: bytes | None) -> Merged:
        """Off the event loop: the agent's facts, the rename, the merge."""
        facts = self._agent_facts()
        rejected: list[str] = []
        app_families = parse_families(app.decode(errors="replace"), rejected) if app else []
        if rejected and not self._rejected_logged:
            self._rejected_logged = True  # once: the application will not change its mind
            _log.log(
                logging.WARNING,
                "app_metrics_lines_invalid",
                count=len(rejected),
                first=rejected[0][:120],
            )
        return merge(envoy, agent_families(facts), app_families)

    def _agent_facts(self) -> AgentFacts:
        try:
            process: ProcessFacts | None = process_facts()
        except (OSError, ValueError, IndexError, StopIteration) as error:
            self.counters.failures["agent"] += 1
            _log.log(logging.WARNING, "agent_metrics_failed", error=error)
            process = None
        return AgentFacts(
            counters=self.counters,
            process=process,
            certificate_expiry=certificate_expiry(self._workdir, time.time()),
            envoy_restarts=read_envoy_restarts(self._workdir),
        )

    async def _envoy_text(self, query: str) -> bytes:
        path = "/stats/prometheus" + (f"?{query}" if query else "")
        try:
            status, body = await self._admin.request_bytes("GET", path)
        except AdminUnavailable as error:
            raise EnvoyScrapeFailed(f"envoy admin unavailable: {error}") from None
        if status != 200:
            reason = body[:200].decode(errors="replace").strip()
            raise EnvoyScrapeFailed(f"envoy admin answered {status}: {reason}")
        return body

    async def _app_text(self) -> bytes | None:
        """The application's metrics, or None (not asked for, or failed: logged)."""
        if self.app is None:
            return None
        try:
            text = await self._fetch_app(self.app)
        except (aiohttp.ClientError, TimeoutError, _AppAnswer) as error:
            self.counters.failures["application"] += 1
            reason = str(error) or type(error).__name__
            if reason != self._app_error:
                self._app_error = reason
                _log.log(logging.WARNING, "app_metrics_failed", url=self.app.url, error=reason)
            return None
        if self._app_error is not None:
            self._app_error = None
            _log.log(logging.INFO, "app_metrics_recovered", url=self.app.url)
        return text

    async def _fetch_app(self, app: AppScrape) -> bytes:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=APP_SCRAPE_TIMEOUT_S),
                connector=aiohttp.TCPConnector(force_close=True),
            )
        async with self._session.get(app.url, headers={"Accept": APP_ACCEPT}) as response:
            if response.status != 200:
                raise _AppAnswer(f"answered {response.status}")
            body = bytearray()
            async for chunk in response.content.iter_chunked(65536):
                body += chunk
                if len(body) > MAX_APP_BYTES:
                    raise _AppAnswer(f"answer larger than {MAX_APP_BYTES} bytes")
        return bytes(body)


class _AppAnswer(Exception):
    """The application answered, but not with metrics we can use."""
