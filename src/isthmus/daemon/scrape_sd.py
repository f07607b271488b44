"""isthmusd's Prometheus service discovery: keeps the file_sd list of the mesh's pods current.

The list (telemetry.scrape_targets builds it from the Pod objects the node runtime reports)
lives at `$ISTHMUS_HOME/addons/prometheus/file_sd/pods.json`, the directory the Prometheus
addon's pod sees (runtime.addons). It is written at start and after every change of a Pod,
coalesced (a burst of reports is one write), off the event loop, atomically (a temporary
file renamed into place, so Prometheus never reads half a list), and only when its bytes
changed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from isthmus.model.pods import POD_KIND, PodView
from isthmus.runtime.addons import addon_home, write_file
from isthmus.store import Compacted, ResourceStore
from isthmus.telemetry.prometheus_addon import FILE_SD_DIR, FILE_SD_FILE
from isthmus.telemetry.prometheus_addon import NAME as PROMETHEUS
from isthmus.telemetry.scrape_targets import scrape_targets

log = logging.getLogger("isthmus.daemon")

RELATIVE = f"{FILE_SD_DIR}/{FILE_SD_FILE}"
RETRY_AFTER = 1.0  # seconds, after a failed write


def targets_path(state_dir: Path) -> Path:
    """Where the file_sd list lives under a mesh home."""
    return addon_home(state_dir, PROMETHEUS) / RELATIVE


class ScrapeTargetsPublisher:
    """Follows the store's Pods and rewrites the file_sd list when it changes."""

    def __init__(
        self, state_dir: Path, store: ResourceStore, pods: Callable[[], Sequence[PodView]]
    ) -> None:
        self._state_dir = state_dir
        self._store = store
        self._pods = pods
        self._changed = asyncio.Event()
        self._written: bytes | None = None

    @property
    def path(self) -> Path:
        return targets_path(self._state_dir)

    async def run(self) -> None:
        """Until cancelled (or the store closes)."""
        self._changed.set()
        writer = asyncio.create_task(self._write_loop())
        try:
            await self._follow()
        finally:
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)

    async def _follow(self) -> None:
        while True:
            try:
                async for event in self._store.watch(since=self._store.revision):
                    if event.object.key.kind == POD_KIND:
                        self._changed.set()
                return  # the store closed
            except Compacted:  # fell behind: read everything again
                self._changed.set()

    async def _write_loop(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            targets = scrape_targets(self._pods())
            data = targets.render()
            if data == self._written:
                continue
            try:
                await asyncio.to_thread(write_file, self._state_dir, PROMETHEUS, RELATIVE, data)
            except OSError as exc:
                log.warning("scrape_sd write_failed path=%s error=%r", self.path, str(exc))
                await asyncio.sleep(RETRY_AFTER)
                self._changed.set()
                continue
            self._written = data
            log.info(
                "scrape_sd written path=%s targets=%d skipped=%s",
                self.path,
                len(targets.groups),
                ",".join(f"{k}:{v}" for k, v in targets.skipped.items()) or "-",
            )
