"""Plain, JSON-ready rows of tasks and workers, shared by the cameras."""

from __future__ import annotations

import time
from typing import Any

from ..state import Task, Worker

__all__ = ("task_row", "worker_row", "TASK_COLUMNS", "WORKER_COLUMNS")

TASK_COLUMNS = ("uuid", "name", "state", "worker", "client", "args", "kwargs", "result",
                "exception", "traceback", "retries", "eta", "expires", "runtime", "sent",
                "received", "started", "succeeded", "failed", "retried", "revoked", "rejected",
                "timestamp", "root_id", "parent_id")
WORKER_COLUMNS = ("hostname", "alive", "heartbeat_age", "last_heartbeat", "freq", "pid", "active",
                  "processed", "loadavg", "sw_ident", "sw_ver", "sw_sys")

_PLAIN = (str, int, float, bool, type(None))


def _plain(value: Any) -> Any:
    """Keep JSON-ready values; anything else (from odd events) becomes its text."""
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def task_row(task: Task) -> dict[str, Any]:
    """Return the task as a flat row; ``worker`` is the worker's hostname."""
    row = {column: _plain(getattr(task, column, None)) for column in TASK_COLUMNS}
    row["worker"] = task.worker.hostname if task.worker is not None else None
    return row


def worker_row(worker: Worker, now: float | None = None) -> dict[str, Any]:
    """Return the worker as a flat row, with liveness and the age of its last heartbeat."""
    now = time.time() if now is None else now
    last = worker.heartbeats[-1] if worker.heartbeats else None
    return {
        "hostname": worker.hostname, "alive": worker.alive,
        "heartbeat_age": None if last is None else round(now - last, 3),
        "last_heartbeat": last, "freq": _plain(worker.freq), "pid": _plain(worker.pid),
        "active": _plain(worker.active), "processed": _plain(worker.processed),
        "loadavg": _plain(worker.loadavg), "sw_ident": _plain(worker.sw_ident),
        "sw_ver": _plain(worker.sw_ver), "sw_sys": _plain(worker.sw_sys),
    }
