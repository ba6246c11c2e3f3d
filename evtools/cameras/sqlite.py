"""SQLiteCamera: workers and tasks kept in an SQLite database, the embedded default for history.

Schema (version 1, recorded in ``meta``)::

    meta(key TEXT PRIMARY KEY, value TEXT)            -- schema_version = 1
    workers(hostname TEXT PRIMARY KEY, alive INTEGER, heartbeat_age REAL, last_heartbeat REAL,
            freq REAL, pid INTEGER, active INTEGER, processed INTEGER, loadavg TEXT (JSON),
            sw_ident TEXT, sw_ver TEXT, sw_sys TEXT, updated_at REAL)
    tasks(uuid TEXT PRIMARY KEY, name TEXT, state TEXT, worker TEXT, client TEXT, args TEXT,
          kwargs TEXT, result TEXT, exception TEXT, traceback TEXT, retries INTEGER, eta TEXT,
          expires TEXT, runtime REAL, sent REAL, received REAL, started REAL, succeeded REAL,
          failed REAL, retried REAL, revoked REAL, rejected REAL, timestamp REAL, root_id TEXT,
          parent_id TEXT, updated_at REAL)

Times are Unix timestamps. Each picture upserts what changed in one transaction; cleanup
deletes finished tasks (SUCCESS, FAILURE, REVOKED) older than ``retention`` seconds.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from .. import states
from ..errors import ConfigurationError
from ..snapshot import Polaroid
from ..state import State
from .rows import TASK_COLUMNS, WORKER_COLUMNS, task_row, worker_row

__all__ = ("SQLiteCamera", "SCHEMA_VERSION")

SCHEMA_VERSION = 1

_TYPES = {"retries": "INTEGER", "runtime": "REAL", "alive": "INTEGER", "heartbeat_age": "REAL",
          "last_heartbeat": "REAL", "freq": "REAL", "pid": "INTEGER", "active": "INTEGER",
          "processed": "INTEGER", **{c: "REAL" for c in ("sent", "received", "started",
                                                         "succeeded", "failed", "retried",
                                                         "revoked", "rejected", "timestamp")}}


def _table(name: str, key: str, columns: tuple[str, ...]) -> str:
    defs = ", ".join(f"{c} {_TYPES.get(c, 'TEXT')}{' PRIMARY KEY' if c == key else ''}"
                     for c in columns)
    return f"CREATE TABLE IF NOT EXISTS {name} ({defs}, updated_at REAL)"


def _upsert(name: str, key: str, columns: tuple[str, ...]) -> str:
    names = (*columns, "updated_at")
    updates = ", ".join(f"{c} = excluded.{c}" for c in names if c != key)
    return (f"INSERT INTO {name} ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)}) "
            f"ON CONFLICT({key}) DO UPDATE SET {updates}")


SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)",
    _table("workers", "hostname", WORKER_COLUMNS),
    _table("tasks", "uuid", TASK_COLUMNS),
    "CREATE INDEX IF NOT EXISTS tasks_state_timestamp ON tasks (state, timestamp)",
    "CREATE INDEX IF NOT EXISTS tasks_name ON tasks (name)",
)
UPSERT_WORKER = _upsert("workers", "hostname", WORKER_COLUMNS)
UPSERT_TASK = _upsert("tasks", "uuid", TASK_COLUMNS)


def _sql_value(value: Any) -> Any:
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    if isinstance(value, bool):
        return int(value)
    return value


class SQLiteCamera(Polaroid):
    """Keep the cluster's workers and tasks in an SQLite file (WAL mode); the schema is
    versioned and described in the module's documentation."""

    options_doc = {
        "path": ("evtools.sqlite", "The database file (relative to --workdir when detached)."),
        "retention": (7 * 24 * 3600, "Seconds finished tasks are kept before cleanup deletes them."),
    }

    def __init__(self, state: State, *args: Any, path: str = "evtools.sqlite",
                 retention: float | str = 7 * 24 * 3600, **kwargs: Any) -> None:
        super().__init__(state, *args, **kwargs)
        try:
            self.retention = float(retention)
        except ValueError:
            raise ConfigurationError(f"SQLiteCamera retention {retention!r} is not a number "
                                     "of seconds") from None
        self.path = path
        try:
            self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except sqlite3.Error as exc:
            raise ConfigurationError(f"SQLiteCamera cannot use {path}: {exc}") from None
        self._generation = 0

    def _migrate(self) -> None:
        with self._transaction():
            for statement in SCHEMA:
                self.db.execute(statement)
            found = self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if found is None:
                self.db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(found[0]) > SCHEMA_VERSION:
                raise ConfigurationError(f"{self.path} has schema version {found[0]}, newer than "
                                         f"this evtools understands ({SCHEMA_VERSION})")

    def _transaction(self) -> Any:
        return _Transaction(self.db)

    def on_shutter(self, state: State) -> None:
        """Upsert the workers and the tasks that changed since the last successful picture."""
        now = time.time()
        generation = state.generation
        # Every worker, changed or not: its liveness changes with time alone.
        workers = [worker_row(w, now) for w in state.workers.values()]
        tasks = [task_row(t) for t in state.tasks_changed_since(self._generation)]
        with self._transaction():
            self.db.executemany(UPSERT_WORKER, [
                [_sql_value(row[c]) for c in WORKER_COLUMNS] + [now] for row in workers])
            self.db.executemany(UPSERT_TASK, [
                [_sql_value(row[c]) for c in TASK_COLUMNS] + [now] for row in tasks])
        self._generation = generation

    def on_cleanup(self) -> None:
        """Delete finished tasks older than the retention period."""
        cutoff = time.time() - self.retention
        ready = tuple(states.READY_STATES)
        with self._transaction():
            self.db.execute(f"DELETE FROM tasks WHERE state IN ({', '.join('?' for _ in ready)}) "
                            "AND timestamp < ?", (*ready, cutoff))

    def close(self) -> None:
        """Close the database."""
        self.db.close()


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` if the block raised."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
