"""What only the SQLite backend promises: durability, restart, and atomic commits on disk."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from isthmus.store import Compacted, ObjectKey, SqliteStore

VS = ObjectKey("VirtualService", "production", "reviews")
DR = ObjectKey("DestinationRule", "production", "reviews")


def body(key: ObjectKey, **spec: Any) -> dict[str, Any]:
    return {
        "kind": key.kind,
        "metadata": {"name": key.name, "namespace": key.namespace},
        "spec": spec,
    }


def test_reopen_loads_objects_and_continues_the_revision(tmp_path: Path) -> None:
    path = tmp_path / "isthmus.db"
    first = SqliteStore(path)
    first.apply([(VS, body(VS, hosts=["a"])), (DR, body(DR))])
    first.apply([(VS, body(VS, hosts=["b"]))])
    first.delete([DR])  # the newest revision is a deletion: it must survive too
    before = first.list()
    first.close()

    second = SqliteStore(path)
    try:
        assert second.list() == before
        assert second.revision == 4
        (created,) = second.apply([(DR, body(DR))])
        assert created.resource_version == 5
        got = second.get(VS)
        assert got is not None and got.created_revision == 1 and got.resource_version == 3
    finally:
        second.close()


def test_reopened_store_watches_only_from_its_opening_revision(tmp_path: Path) -> None:
    path = tmp_path / "isthmus.db"
    first = SqliteStore(path)
    first.apply([(VS, body(VS))])
    first.close()
    second = SqliteStore(path)
    try:
        with pytest.raises(Compacted):
            second.watch(0)  # events of the previous process are gone
        second.watch(1)
    finally:
        second.close()


def test_commit_is_durable_without_close(tmp_path: Path) -> None:
    """A process that dies right after apply returns must not lose the change."""
    path = tmp_path / "isthmus.db"
    script = textwrap.dedent(
        f"""
        import os
        from isthmus.store import ObjectKey, SqliteStore
        store = SqliteStore({str(path)!r})
        key = ObjectKey("VirtualService", "production", "reviews")
        store.apply([(key, {{"metadata": {{"name": "reviews"}}, "spec": {{"n": 1}}}})])
        os._exit(0)
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    store = SqliteStore(path)
    try:
        got = store.get(VS)
        assert got is not None and got.body["spec"] == {"n": 1}
        assert store.revision == 1
    finally:
        store.close()


def test_failed_commit_leaves_memory_disk_and_watchers_unchanged(tmp_path: Path) -> None:
    """A real SQLite failure (the file is locked by another writer) aborts the apply."""
    path = tmp_path / "isthmus.db"
    store = SqliteStore(path, busy_timeout=0.05)
    try:
        store.apply([(VS, body(VS, hosts=["a"]))])
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                store.apply([(DR, body(DR)), (VS, body(VS, hosts=["b"]))])
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert store.revision == 1
        assert store.get(DR) is None
        (again,) = store.apply([(DR, body(DR))])
        assert again.resource_version == 2  # the failed revisions were never used
    finally:
        store.close()
    reopened = SqliteStore(path)
    try:
        assert [o.key for o in reopened.list()] == [DR, VS]
        got = reopened.get(VS)
        assert got is not None and got.body["spec"] == {"hosts": ["a"]}
    finally:
        reopened.close()


def test_database_uses_wal_and_full_sync(tmp_path: Path) -> None:
    path = tmp_path / "isthmus.db"
    store = SqliteStore(path)
    try:
        assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    finally:
        store.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "isthmus.db"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=99")
    db.close()
    with pytest.raises(sqlite3.DatabaseError, match="schema version 99"):
        SqliteStore(path)


def test_closed_store_refuses_use(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "nested" / "dir" / "isthmus.db")
    store.close()
    store.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        store.apply([(VS, body(VS))])
