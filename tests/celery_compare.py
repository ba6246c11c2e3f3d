"""Helpers that feed the same event bodies to Celery's code and to evtools', and compare."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).parent / "data" / "celery-redis.jsonl"

#: Task fields compared between the two states (children/parent/root compared as ids).
TASK_FIELDS = ("uuid", "name", "state", "received", "sent", "started", "rejected", "succeeded",
               "failed", "retried", "revoked", "args", "kwargs", "eta", "expires", "retries",
               "result", "exception", "timestamp", "runtime", "traceback", "exchange",
               "routing_key", "clock", "client", "root_id", "parent_id")
WORKER_FIELDS = ("hostname", "pid", "freq", "heartbeats", "clock", "active", "processed",
                 "loadavg", "sw_ident", "sw_ver", "sw_sys")


def corpus_messages(path: Path = CORPUS) -> list[dict[str, Any]]:
    """Return the corpus records (one per message, in arrival order)."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def feed(receiver: Any, state: Any, records: list[dict[str, Any]]) -> None:
    """Feed each record's raw body through ``receiver.event_from_message`` into ``state``."""
    for record in records:
        body = json.loads(record["body_raw"])
        for event in body if isinstance(body, list) else [body]:
            _, prepared = receiver.event_from_message(event, now=lambda: record["recv_time"])  # noqa: B023
            state.event(prepared)


def summarise(state: Any) -> dict[str, Any]:
    """Return what a user sees of a state, as plain comparable data."""
    tasks = {}
    for uuid, task in state.tasks.items():
        row = {field: getattr(task, field, None) for field in TASK_FIELDS}
        row["worker"] = task.worker.hostname if task.worker is not None else None
        row["children"] = sorted(child.uuid for child in task.children)
        row["parent"] = task.parent.uuid if task.parent is not None else None
        row["root"] = task.root.uuid if task.root is not None else None
        row["ready"] = task.ready
        row["origin"] = task.origin
        row["info"] = task.info()
        tasks[uuid] = row
    workers = {}
    for hostname, worker in state.workers.items():
        row = {field: copy.copy(getattr(worker, field, None)) for field in WORKER_FIELDS}
        row["id"] = worker.id
        workers[hostname] = row
    return {
        "tasks": tasks,
        "workers": workers,
        "event_count": state.event_count,
        "task_count": state.task_count,
        "task_types": state.task_types(),
        "by_time": [uuid for uuid, _ in state.tasks_by_time()],
        "by_time_forward": [uuid for uuid, _ in state.tasks_by_time(reverse=False)],
        "by_type": {name: sorted(t.uuid for t in state.tasks_by_type[name])
                    for name in state.task_types()},
    }


def celery_pair() -> tuple[Any, Any]:
    """Return Celery's (receiver, State) on an in-memory connection."""
    from celery import Celery
    app = Celery("compare", broker="memory://", set_as_current=False)
    receiver = app.events.Receiver(app.connection_for_read(), handlers={})
    return receiver, app.events.State()


def evtools_pair() -> tuple[Any, Any]:
    """Return evtools' (receiver, State) on an in-memory connection."""
    from kombu import Connection

    from evtools.receiver import EventReceiver
    from evtools.state import State
    return EventReceiver(Connection("memory://"), handlers={}), State()
