"""The dump view: one line per event, in Celery's human format or as JSON lines."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from collections.abc import Sequence
from typing import Any, TextIO

from ..filters import MULTI_KEY, EventFilter, binding_keys, binds
from ..lru import LRUMap
from ..textsafe import escape_json, escape_text
from ..transport.speedups import dumps_line

__all__ = ("Dumper", "dump_binding_keys", "format_human", "format_json", "humanize_type", "HUMAN_TYPES")

HUMAN_TYPES = {
    "worker-offline": "shutdown",
    "worker-online": "started",
    "worker-heartbeat": "heartbeat",
}

#: How many task names the dump remembers to label later events of the same task.
TASK_NAME_MEMORY = 0xFFF

_SENDS_NAME = frozenset({"task-received", "task-sent"})


def dump_binding_keys(types: Sequence[str], tasks: Sequence[str] = (),
                      json_lines: bool = False, recording: bool = False) -> tuple[str, ...]:
    """Return the routing keys a dump of ``types`` needs from the broker.

    Besides the wanted types, the events that name a task (task-received, task-sent) when
    task events are wanted and the name is used: in human lines, or by ``tasks`` globs.
    A ``recording`` (``--record``) keeps every event, so it needs them all.
    """
    keys = binding_keys(() if recording else types)
    if keys != binding_keys(()) and binds(keys, MULTI_KEY) and (tasks or not json_lines):
        keys = binding_keys([*types, *sorted(_SENDS_NAME)])
    return keys


def humanize_type(type_: str) -> str:
    """Return the words Celery's dump uses for an event type (``task succeeded``, ``heartbeat``)."""
    type_ = type_.lower()
    return HUMAN_TYPES.get(type_) or type_.replace("-", " ")


#: The words for the standard event types, worked out once.
_HUMANIZED = {type_: humanize_type(type_) for type_ in (
    "task-sent", "task-received", "task-started", "task-succeeded", "task-failed",
    "task-retried", "task-revoked", "task-rejected", "worker-online", "worker-heartbeat",
    "worker-offline")}


def _when(event: dict[str, Any]) -> Any:
    timestamp = event.get("timestamp")
    try:
        return datetime.fromtimestamp(timestamp, timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return timestamp


def _fields(event: dict[str, Any], skip: frozenset[str]) -> str:
    return ", ".join([f"{key}={event[key]}" for key in sorted(event) if key not in skip])


_SKIP_WORKER = frozenset({"timestamp", "type", "hostname"})
_SKIP_TASK = frozenset({"timestamp", "type", "hostname", "uuid"})
_SKIP_NAMING = frozenset({"timestamp", "type", "hostname", "uuid", "name", "args", "kwargs"})


def task_label_for(event: dict[str, Any]) -> str:
    """Return how the dump names a task: ``name(uuid) args=... kwargs=...``."""
    return (f"{event.get('name')}({event.get('uuid')}) args={event.get('args')} "
            f"kwargs={event.get('kwargs')}")


def format_human(event: dict[str, Any], task_label: str = "") -> str:
    """Return Celery's dump line for ``event`` (control characters escaped).

    ``task_label`` is ``name(uuid) args=... kwargs=...`` remembered from the task's
    task-received or task-sent event; those two events carry their own.
    """
    return escape_text(_human_line(event, task_label))


def _human_line(event: dict[str, Any], task_label: str) -> str:
    """Celery's dump line for ``event``, not yet escaped."""
    type_ = event.get("type", "")
    human = _HUMANIZED.get(type_) if type(type_) is str else None
    if human is None:
        type_ = str(type_).lower()
        human = humanize_type(type_)
    head = f"{event.get('hostname')} [{_when(event)}] {human}"
    if type_.startswith("task-"):
        if type_ in _SENDS_NAME:
            task_label = task_label or task_label_for(event)
            fields = _fields(event, _SKIP_NAMING)
        else:
            fields = _fields(event, _SKIP_TASK)
        return f"{head}{':' if fields else ''} {task_label} {fields}"
    fields = _fields(event, _SKIP_WORKER)
    return f"{head}{':' if fields else ''} {fields}"


def format_json(event: dict[str, Any]) -> str:
    """Return ``event`` as one line of JSON, terminal-safe (NaN and infinities become null).

    Written by orjson where ``evtools[speedups]`` installed it: the same values, compact
    (see :mod:`evtools.transport.speedups`).
    """
    return escape_json(dumps_line(event))


class Dumper:
    """Write one line per event to ``out``, flushed per line so ``| grep`` works live.

    As in Celery, every line goes through :meth:`say`, and a subclass that overrides
    :meth:`format_task_event` gets task events through it.
    """

    def __init__(self, out: TextIO | None = None, json_lines: bool = False,
                 event_filter: EventFilter | None = None, record: TextIO | None = None) -> None:
        self.out = out if out is not None else sys.stdout
        #: Where every event captured is also written as a JSON line (before filtering).
        self.record = record
        self.json_lines = json_lines
        self.filter = event_filter if event_filter else None
        #: uuid -> (task name, ``name(uuid) args=... kwargs=...``) for labelling later events.
        self.task_names: LRUMap[str, tuple[Any, str]] = LRUMap(TASK_NAME_MEMORY)
        self.printed = 0
        # Only a subclass's own format_task_event needs the event taken apart as Celery does.
        self._own_task_format = type(self).format_task_event is not Dumper.format_task_event

    def say(self, msg: Any) -> None:
        """Write ``msg`` as one line (control characters, newlines included, escaped) and flush."""
        self.out.write(escape_text(str(msg)) + "\n")
        self.out.flush()

    def format_task_event(self, hostname: Any, timestamp: Any, type: str, task: str,
                          event: dict[str, Any]) -> None:
        """Say Celery's line for a task event: ``event`` holds the fields not named by the others.

        ``task`` is ``name(uuid) args=... kwargs=...`` (or ``''``) and ``timestamp`` usually a
        UTC datetime, as Celery's dumper passes them.
        """
        fields = ", ".join([f"{key}={event[key]}" for key in sorted(event)])
        self.say(f"{hostname} [{timestamp}] {humanize_type(type)}{':' if fields else ''} "
                 f"{task} {fields}")

    def on_event(self, event: dict[str, Any]) -> None:
        """Format and write ``event`` unless the filter drops it."""
        if self.record is not None:
            self.record.write(format_json(event) + "\n")
            self.record.flush()
        type_ = event.get("type")
        name, label = None, ""
        if isinstance(type_, str) and type_.startswith("task-"):
            uuid = event.get("uuid")
            if type_ in _SENDS_NAME:
                name, label = event.get("name"), task_label_for(event)
                self.task_names[uuid] = (name, label)
            else:
                remembered = self.task_names.data  # read without LRUMap's Python-level __getitem__
                known = remembered.get(uuid)
                if known is not None:
                    remembered.move_to_end(uuid)
                    name, label = known
        if self.filter is not None and not self.filter.matches(event, name):
            return
        if self.json_lines:
            self.say(format_json(event))
        elif self._own_task_format and isinstance(type_, str) and type_.startswith("task-"):
            self._call_own_task_format(event, label)
        else:
            self.say(_human_line(event, label))  # say() escapes it
        self.printed += 1

    def _call_own_task_format(self, event: dict[str, Any], label: str) -> None:
        """Take the event apart as Celery's dumper does and hand it to the overriding method."""
        skip = _SKIP_NAMING if event["type"] in _SENDS_NAME else _SKIP_TASK
        rest = {key: value for key, value in event.items() if key not in skip}
        self.format_task_event(event.get("hostname"), _when(event), event["type"].lower(),
                               label, rest)
