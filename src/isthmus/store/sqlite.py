"""SqliteStore: the store made durable in one SQLite file ($ISTHMUS_HOME/isthmus.db).

The file is written through (WAL, synchronous=FULL: a returned apply survives a power
cut) and read only when opening; all reads are served from the in-memory index. The
store-wide revision is kept in the file too, so it continues after a restart even when
the newest changes were deletions. It holds Secrets, so only its owner may read it (0600).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from pathlib import Path

from isthmus.store.history import DEFAULT_HISTORY
from isthmus.store.indexed import IndexedStore
from isthmus.store.types import ObjectKey, StoredObject

SCHEMA_VERSION = 1

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS objects (
        kind TEXT NOT NULL,
        namespace TEXT NOT NULL,
        name TEXT NOT NULL,
        resource_version INTEGER NOT NULL,
        created_revision INTEGER NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (kind, namespace, name)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS store_meta (
        key TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    ) WITHOUT ROWID""",
    "INSERT OR IGNORE INTO store_meta (key, value) VALUES ('revision', 0)",
    f"PRAGMA user_version={SCHEMA_VERSION}",
)

_UPSERT = """
INSERT INTO objects (kind, namespace, name, resource_version, created_revision, body)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (kind, namespace, name) DO UPDATE SET
    resource_version = excluded.resource_version,
    created_revision = excluded.created_revision,
    body = excluded.body
"""


class SqliteStore(IndexedStore):
    """Objects in a SQLite file, loaded whole on open and written through on every change."""

    def __init__(
        self,
        path: str | Path,
        history: int = DEFAULT_HISTORY,
        busy_timeout: float = 5.0,
    ) -> None:
        self.path = Path(path)
        self._db = _open(self.path, busy_timeout)
        try:
            objects, revision = _load(self._db)
        except BaseException:
            self._db.close()
            raise
        super().__init__(objects, revision, history)

    def _persist(self, revision: int, puts: list[StoredObject], deletes: list[ObjectKey]) -> None:
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                _UPSERT,
                [
                    (*o.key, o.resource_version, o.created_revision, json.dumps(o.body))
                    for o in puts
                ],
            )
            db.executemany(
                "DELETE FROM objects WHERE kind = ? AND namespace = ? AND name = ?",
                [tuple(k) for k in deletes],
            )
            db.execute("UPDATE store_meta SET value = ? WHERE key = 'revision'", (revision,))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _close_backend(self) -> None:
        self._db.close()


def _open(path: Path, busy_timeout: float) -> sqlite3.Connection:
    """Open (creating if needed) the database with durable-commit settings."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _owner_only(path)
    db = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
    try:
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"cannot switch {path} to WAL mode (got {mode})")
        db.execute("PRAGMA synchronous=FULL")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"{path} has schema version {version}; this isthmus supports up to "
                f"{SCHEMA_VERSION} (upgrade isthmus)"
            )
        db.execute("BEGIN IMMEDIATE")
        for statement in _SCHEMA:
            db.execute(statement)
        db.execute("COMMIT")
    except BaseException:
        db.close()
        raise
    return db


def _owner_only(path: Path) -> None:
    """Make the database readable by its owner only (mode 0600, as the API socket): it
    holds Secrets, private keys included. SQLite gives the WAL and shared-memory files it
    creates the database's mode; ones left by an older isthmus are narrowed too."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            if file.stat().st_mode & 0o077:
                os.chmod(file, 0o600)


def _load(db: sqlite3.Connection) -> tuple[list[StoredObject], int]:
    """Every stored object and the store-wide revision, read in one snapshot."""
    db.execute("BEGIN")
    try:
        rows = db.execute(
            "SELECT kind, namespace, name, resource_version, created_revision, body FROM objects"
        ).fetchall()
        (revision,) = db.execute("SELECT value FROM store_meta WHERE key = 'revision'").fetchone()
    finally:
        db.execute("COMMIT")
    objects = [
        StoredObject(ObjectKey(kind, ns, name), rv, json.loads(body), created)
        for kind, ns, name, rv, created, body in rows
    ]
    return objects, int(revision)
