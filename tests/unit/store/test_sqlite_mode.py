"""The database holds Secrets (private keys included): only its owner may read it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from isthmus.store import ObjectKey, SqliteStore

SECRET = ObjectKey("Secret", "istio-system", "bookinfo")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_database_and_its_wal_are_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "isthmus.db"
    previous = os.umask(0o022)
    try:
        store = SqliteStore(path)
        store.apply([(SECRET, {"kind": "Secret", "metadata": {"name": "bookinfo"}, "data": {}})])
        files = [p for p in tmp_path.iterdir() if p.name.startswith("isthmus.db")]
        assert {p.name for p in files} >= {"isthmus.db", "isthmus.db-wal"}
        assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}
        store.close()
    finally:
        os.umask(previous)


def test_a_database_left_readable_by_others_is_narrowed_on_open(tmp_path: Path) -> None:
    path = tmp_path / "isthmus.db"
    SqliteStore(path).close()
    os.chmod(path, 0o644)
    wal = tmp_path / "isthmus.db-wal"
    wal.touch()
    os.chmod(wal, 0o664)

    store = SqliteStore(path)

    assert mode(path) == 0o600
    assert mode(wal) == 0o600
    store.close()
