"""What the monitor shows, copied out of the State under its lock: plain rows, no live objects.

Building a frame touches only the visible rows (plus a count when a filter is on), so a
state of 100,000 tasks draws as fast as one of ten.
"""

from __future__ import annotations

import fnmatch
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any

from .. import states
from ..state import HEARTBEAT_DRIFT_MAX, State, Task, Worker

__all__ = ("TaskRow", "WorkerRow", "Frame", "TaskFilter", "build_frame", "task_details",
           "worker_rows")

ACTIVE_STATES = frozenset({states.RECEIVED, states.STARTED, states.RETRY})

#: With a filter on, matching tasks are counted this far past the visible rows, no further.
COUNT_AHEAD = 1000


@dataclass(slots=True)
class TaskRow:
    """One line of the task table."""

    uuid: str
    worker: str
    name: str
    time: str
    state: str


@dataclass(slots=True)
class WorkerRow:
    """One line of the workers view."""

    hostname: str
    status: str
    heartbeat_age: float | None
    active: Any
    processed: Any
    loadavg: Any
    software: str
    skew: float | None
    skew_warning: bool


@dataclass(slots=True)
class Frame:
    """Everything one screen draws, consistent with itself."""

    rows: list[TaskRow]
    offset: int
    total: int
    event_count: int
    task_count: int
    workers_alive: list[str]
    workers_total: int
    dropped: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class TaskFilter:
    """Which tasks to list: a pattern over name, uuid and worker, and/or a state group."""

    def __init__(self, pattern: str = "", only: str | None = None) -> None:
        self.pattern = pattern
        self.only = only  # None, "failed" or "active"
        text = pattern.strip()
        if not text:
            self._match = None
        elif any(c in text for c in "*?["):
            self._match = re.compile(fnmatch.translate(text), re.IGNORECASE).match
        else:
            self._match = re.compile(re.escape(text), re.IGNORECASE).search
        # Names and hostnames repeat: remember each verdict. A uuid is only hex digits and
        # dashes, so a pattern with other letters can never match one: skip the search.
        self._verdicts: dict[str, bool] = {}
        self._can_match_uuid = set(text.lower()) <= set("0123456789abcdef-*?[]!")

    def __bool__(self) -> bool:
        return self._match is not None or self.only is not None

    def describe(self) -> str:
        """A short text for the status line."""
        parts = []
        if self._match is not None:
            parts.append(f"/{self.pattern}")
        if self.only:
            parts.append(f"only {self.only}")
        return " ".join(parts)

    def keeps(self, task: Task) -> bool:
        """Return whether ``task`` is listed."""
        if self.only == "failed" and task.state != states.FAILURE:
            return False
        if self.only == "active" and task.state not in ACTIVE_STATES:
            return False
        if self._match is None:
            return True
        verdicts = self._verdicts
        for value in (task.name, task.worker.hostname if task.worker is not None else None):
            if value is None:
                continue
            verdict = verdicts.get(value)
            if verdict is None:
                if len(verdicts) > 10_000:
                    verdicts.clear()
                verdict = verdicts[value] = self._match(str(value)) is not None
            if verdict:
                return True
        return self._can_match_uuid and self._match(str(task.uuid)) is not None


def _when(timestamp: Any) -> str:
    try:
        return datetime.fromtimestamp(float(timestamp)).strftime("%H:%M:%S")
    except (TypeError, ValueError, OverflowError, OSError):
        return ""


def _row(task: Task) -> TaskRow:
    worker = task.worker.hostname if task.worker is not None else (task.client or "")
    return TaskRow(task.uuid, str(worker), str(task.name or ""), _when(task.timestamp),
                   str(task.state))


def build_frame(state: State, offset: int, height: int, task_filter: TaskFilter) -> Frame:
    """Copy the rows ``offset .. offset+height`` of the (filtered) newest-first task list."""
    return state.freeze_while(_build_frame, state, offset, height, task_filter)


def _build_frame(state: State, offset: int, height: int, task_filter: TaskFilter) -> Frame:
    more = False
    if task_filter:
        # Count past the visible rows only so far: a frame must not scan 100,000 tasks.
        rows, total, enough = [], 0, offset + height + COUNT_AHEAD
        keeps = task_filter.keeps
        for _, task in state.tasks_by_time():
            if not keeps(task):
                continue
            if offset <= total < offset + height:
                rows.append(_row(task))
            total += 1
            if total >= enough:
                more = True
                break
    else:
        total = len(state.tasks)
        offset = max(0, min(offset, max(total - 1, 0)))
        rows = [_row(task) for _, task in islice(state.tasks_by_time(), offset, offset + height)]
    workers = list(state.workers.data.values())
    alive = sorted(w.hostname for w in workers if w.alive)
    dropped = sum(state.dropped.values())
    return Frame(rows=rows, offset=offset, total=total, event_count=state.event_count,
                 task_count=state.task_count, workers_alive=alive,
                 workers_total=len(workers), dropped=dropped, extra={"more": more})


def task_details(state: State, uuid: str, what: str) -> list[str]:
    """Return the lines of the info, traceback or result view of a task."""
    return state.freeze_while(_task_details, state, uuid, what)


def _task_details(state: State, uuid: str, what: str) -> list[str]:
    task = state.tasks.data.get(uuid)
    if task is None:
        return [f"task {uuid} is no longer in the state"]
    if what == "traceback":
        return str(task.traceback or "(no traceback)").splitlines() or [""]
    if what == "result":
        return str(task.result if task.result is not None else "(no result)").splitlines() or [""]
    lines = [f"uuid: {task.uuid}", f"name: {task.name}", f"state: {task.state}",
             f"worker: {task.worker.hostname if task.worker is not None else task.client}"]
    for key in ("sent", "received", "started", "succeeded", "failed", "retried", "revoked"):
        value = getattr(task, key, None)
        if value:
            lines.append(f"{key}: {_when(value)}")
    for key, value in task.info().items():
        lines.extend(f"{key}: {line}" if n == 0 else f"    {line}"
                     for n, line in enumerate(str(value).splitlines() or [""]))
    children = [child.uuid for child in task.children]
    if children:
        lines.append(f"children: {', '.join(children)}")
    return lines


def _status(worker: Worker, now: float) -> tuple[str, float | None]:
    if not worker.heartbeats:
        return "offline", None
    age = now - worker.heartbeats[-1]
    freq = worker.freq if isinstance(worker.freq, (int, float)) and worker.freq > 0 else 60.0
    if worker.alive:
        return "online", age
    return ("stale" if age < freq * 10 else "offline"), age


def worker_rows(state: State, now: float | None = None) -> list[WorkerRow]:
    """Return the workers view: status from heartbeat age, load, software, clock skew."""
    now = time.time() if now is None else now
    return state.freeze_while(_worker_rows, state, now)


def _worker_rows(state: State, now: float) -> list[WorkerRow]:
    rows = []
    for worker in sorted(state.workers.data.values(), key=lambda w: str(w.hostname)):
        status, age = _status(worker, now)
        skew = None
        if isinstance(worker.local_received, (int, float)) and \
                isinstance(worker.timestamp, (int, float)):
            skew = worker.local_received - worker.timestamp
        software = " ".join(str(x) for x in (worker.sw_ident, worker.sw_ver) if x)
        rows.append(WorkerRow(str(worker.hostname), status, age, worker.active,
                              worker.processed, worker.loadavg, software, skew,
                              skew is not None and abs(skew) > HEARTBEAT_DRIFT_MAX))
    return rows
