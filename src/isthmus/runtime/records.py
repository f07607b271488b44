"""The node runtime's state on disk: one JSON record per pod it runs.

A restarted node runtime adopts its pods from these records: which pod runs in which
namespace, its spec, its readiness and how often its containers restarted before the
current shim (the shim's socket path follows from the pod's name). Records are written
atomically (temporary file, rename) after every step of a pod's life, so a crash at any
point leaves a record the next node runtime can continue from.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("isthmus.runtime")

_MAX_FILE_NAME = 200


class PodRecords:
    """Pod records in one directory, by pod key (`namespace.name`)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, key: str) -> Path:
        name = key if len(key) <= _MAX_FILE_NAME else hashlib.sha256(key.encode()).hexdigest()
        return self.directory / f"{name}.json"

    def save(self, key: str, record: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self._path(key)
        temporary = path.with_name(path.name + ".tmp")
        # Atomic against a crash of the node runtime (what adoption is for); not fsynced,
        # as pods do not survive a power cut either.
        temporary.write_text(json.dumps(record))
        temporary.replace(path)

    def remove(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def exist(self) -> bool:
        """Whether there is a record at all (a previous node runtime left pods)."""
        return any(self.directory.glob("*.json"))

    def load_all(self) -> list[dict[str, Any]]:
        """Every readable record; unreadable ones are logged and skipped."""
        records = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                log.warning("runtime record_unreadable path=%s error=%r", path, str(exc))
                continue
            if isinstance(data, dict):
                records.append(data)
        return records
