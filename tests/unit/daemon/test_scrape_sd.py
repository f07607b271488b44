"""isthmusd's file_sd publisher on a real store: the list follows the Pods the node runtime
reports, as they come and go, and is rewritten only when it changes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from isthmus.daemon.mesh import MeshController
from isthmus.daemon.scrape_sd import ScrapeTargetsPublisher, targets_path
from isthmus.model.pods import POD_KIND
from isthmus.store import MemoryStore, ObjectKey

SCRAPE = {
    "prometheus.io/scrape": "true",
    "prometheus.io/port": "15020",
    "prometheus.io/path": "/stats/prometheus",
}


def pod(name: str, ip: str, annotations: dict[str, str], ready: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop", "annotations": annotations},
        "spec": {"nodeName": "n", "containers": [{"name": "app"}]},
        "status": {
            "phase": "Running",
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def key(name: str) -> ObjectKey:
    return ObjectKey(POD_KIND, "shop", name)


async def until_file(path: Path, wanted: list[str]) -> list[dict[str, Any]]:
    """Until the list names exactly `wanted` pods (bounded by the test timeout)."""
    while True:
        if path.exists():
            groups: list[dict[str, Any]] = json.loads(path.read_text())
            if [g["labels"]["pod"] for g in groups] == wanted:
                return groups
        await asyncio.sleep(0.01)


async def test_the_list_follows_pods_as_they_come_and_go(tmp_path: Path) -> None:
    store = MemoryStore()
    store.apply([(key("a"), pod("a", "10.44.0.2", SCRAPE))])
    controller = MeshController(store)
    publisher = ScrapeTargetsPublisher(tmp_path, store, controller.pods)
    path = targets_path(tmp_path)
    assert path == tmp_path / "addons" / "prometheus" / "file_sd" / "pods.json"
    task = asyncio.create_task(publisher.run())
    try:
        (first,) = await until_file(path, ["a"])
        assert first["targets"] == ["10.44.0.2:15020"]
        store.apply(
            [(key("b"), pod("b", "10.44.0.3", SCRAPE)), (key("c"), pod("c", "10.44.0.4", {}))]
        )
        await until_file(path, ["a", "b"])
        store.delete([key("a")])
        (left,) = await until_file(path, ["b"])
        assert left["labels"]["__meta_kubernetes_pod_ready"] == "true"
        store.apply([(key("b"), pod("b", "10.44.0.3", SCRAPE, ready=False))])
        await until_file(path, ["b"])
        while json.loads(path.read_text())[0]["labels"]["__meta_kubernetes_pod_ready"] != "false":
            await asyncio.sleep(0.01)
        # A change of a pod that is not scraped does not rewrite the file (a rename would
        # give it a new inode).
        inode = path.stat().st_ino
        store.apply([(key("c"), pod("c", "10.44.0.4", {}, ready=False))])
        await asyncio.sleep(0.2)
        assert path.stat().st_ino == inode
        assert [p.name for p in path.parent.iterdir()] == ["pods.json"]  # no temporaries
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        store.close()
