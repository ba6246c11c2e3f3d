"""The embedded broker: kombu's ``filesystem://`` transport in a per-user folder, kept bounded.

kombu's filesystem transport knows neither message TTLs nor queue expiry, so a monitor killed
without cleaning up would leave its queue bound and every later event written for it. Each
evtools consumer therefore keeps a *lease* file fresh while it runs, and :func:`sweep` (run
by the demo publisher and by every consumer) unbinds queues whose lease went stale, deletes
their messages, and deletes messages older than the queue's message TTL.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ("default_folder", "transport_options", "Lease", "remove_queue", "sweep")

logger = logging.getLogger(__name__)

EXCHANGE_SUFFIX = ".exchange"
#: How often a lease is refreshed, in seconds.
LEASE_INTERVAL = 2.0
#: A lease younger than this is never taken for dead, whatever the queue expiry says.
MIN_EXPIRY = 10.0


def default_folder() -> Path:
    """Return the per-user folder of the embedded broker (``$XDG_DATA_HOME/evtools/broker``)."""
    override = os.environ.get("EVTOOLS_FS_BROKER")
    if override:
        return Path(override)
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "evtools" / "broker"


def _paths(folder: Path) -> dict[str, Path]:
    return {"queue": folder / "queue", "control": folder / "control", "leases": folder / "leases"}


def transport_options(folder: Path | None = None) -> dict[str, Any]:
    """Return kombu transport options for the broker in ``folder`` (created if missing)."""
    paths = _paths(folder or default_folder())
    for path in paths.values():
        path.mkdir(parents=True, exist_ok=True)
    return {"data_folder_in": str(paths["queue"]), "data_folder_out": str(paths["queue"]),
            "control_folder": str(paths["control"]), "polling_interval": 0.1}


class Lease:
    """Keep ``<folder>/leases/<queue>`` fresh from a thread while a consumer runs.

    Should a sweeper have taken the consumer for dead anyway (a process stopped for a while),
    the lease puts the queue's binding back in the exchange table as it last saw it.
    """

    def __init__(self, queue: str, folder: Path | None = None,
                 interval: float = LEASE_INTERVAL) -> None:
        self.path = _paths(folder or default_folder())["leases"] / queue
        self.folder = folder or default_folder()
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="evtools-lease", daemon=True)
        self._bindings: dict[Path, list[Any]] = {}

    def __enter__(self) -> Lease:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(str(os.getpid()))
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._stop.set()
        self._thread.join(5)
        self.path.unlink(missing_ok=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                os.utime(self.path)
            except FileNotFoundError:
                self.path.write_text(str(os.getpid()))
            except OSError:
                pass  # a full or read-only disk: the next turn tries again
            try:
                self._keep_bound()
            except (OSError, ValueError):
                pass  # the next turn tries again

    def _keep_bound(self) -> None:
        queue = self.path.name
        for table in (self.folder / "control").glob(f"*{EXCHANGE_SUFFIX}"):
            with locked(table) as fh:
                bindings = json.loads(fh.read() or "[]")
                mine = [b for b in bindings if b[2] == queue]
                if mine:
                    self._bindings[table] = mine
                    continue
                lost = self._bindings.get(table)
                if not lost:
                    continue
                logger.warning("queue %s was unbound by a sweep; binding it again", queue)
                fh.seek(0)
                fh.write(json.dumps(lost + bindings).encode())
                fh.truncate()


@contextmanager
def locked(path: Path) -> Iterator[BinaryIO]:
    """Open ``path`` for update under the exclusive ``flock`` kombu's transport also takes."""
    with open(path, "rb+", buffering=0) as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield fh
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _queue_of(message_name: str) -> str:
    """Return the queue a message file belongs to (``<ms>_<uuid>.<queue>.msg``)."""
    return message_name.partition(".")[2].rpartition(".msg")[0]


def _stale_queues(control: Path, leases: Path, expires: float, now: float) -> dict[Path, set[str]]:
    stale: dict[Path, set[str]] = {}
    for table in control.glob(f"*{EXCHANGE_SUFFIX}"):
        try:
            bindings = json.loads(table.read_text() or "[]")
        except (OSError, ValueError):
            continue
        for _routing_key, _pattern, queue in bindings:
            lease = leases / queue
            try:
                age = now - lease.stat().st_mtime
            except FileNotFoundError:
                age = now - table.stat().st_mtime if not lease.exists() else 0.0
            if age > max(expires, MIN_EXPIRY):
                stale.setdefault(table, set()).add(queue)
    return stale


def _unbind(control: Path, queues: set[str], only: set[Path] | None = None) -> None:
    """Remove every binding of ``queues`` from the exchange tables (those in ``only``, if given)."""
    for table in control.glob(f"*{EXCHANGE_SUFFIX}"):
        if only is not None and table not in only:
            continue
        try:
            with locked(table) as fh:
                bindings = json.loads(fh.read() or "[]")
                kept = [b for b in bindings if b[2] not in queues]
                if len(kept) != len(bindings):
                    fh.seek(0)
                    fh.write(json.dumps(kept).encode())
                    fh.truncate()
        except FileNotFoundError:
            continue


def _delete_messages(queue_folder: Path, queues: set[str], ttl: float | None, now: float) -> int:
    """Delete the messages of ``queues``, and any older than ``ttl`` seconds; return how many."""
    deleted = 0
    try:
        names = os.listdir(queue_folder)
    except FileNotFoundError:
        names = []
    for name in names:
        path = queue_folder / name
        try:
            expired = ttl is not None and now - path.stat().st_mtime > ttl
        except FileNotFoundError:
            continue
        if expired or _queue_of(name) in queues:
            try:
                path.unlink()
                deleted += 1
            except FileNotFoundError:
                pass
    return deleted


def remove_queue(queue: str, folder: Path | None = None) -> None:
    """Unbind ``queue`` from every exchange and delete its messages: a consumer that stops.

    kombu's filesystem transport before 5.4 never removes a deleted queue's binding from the
    exchange table, so every later event would still be written for it until a sweep.
    """
    paths = _paths(folder or default_folder())
    _unbind(paths["control"], {queue})
    _delete_messages(paths["queue"], {queue}, None, time.time())


def sweep(folder: Path | None = None, ttl: float = 5.0, expires: float = 60.0,
          now: float | None = None) -> dict[str, int]:
    """Unbind queues whose consumer is gone and delete expired messages; return counts."""
    paths = _paths(folder or default_folder())
    now = time.time() if now is None else now
    stale = _stale_queues(paths["control"], paths["leases"], expires, now)
    removed_queues: set[str] = set()
    for table, queues in stale.items():
        _unbind(paths["control"], queues, only={table})
        removed_queues |= queues
    for queue in removed_queues:
        (paths["leases"] / queue).unlink(missing_ok=True)
    deleted = _delete_messages(paths["queue"], removed_queues, ttl, now)
    return {"queues": len(removed_queues), "messages": deleted}
