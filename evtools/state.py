"""The cluster model built from events: :class:`State`, its :class:`Task` and :class:`Worker`.

Public behaviour follows ``celery.events.state``; the differences are deliberate and
listed in ``docs/compatibility.md`` (every index is bounded, indexes hold tasks by
uuid rather than by weak reference, ``tasks_by_worker`` is keyed by the worker that
ran the task).
"""

from __future__ import annotations

import bisect
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from decimal import Decimal
from itertools import islice
from typing import Any, ClassVar

from . import states
from .fieldwriter import FieldSpec, WriterCache
from .lru import LRUMap
from .states import NONE_PRECEDENCE, PRECEDENCE_LOOKUP, RETRY
from .timeline import Timeline, time_key

__all__ = ("State", "Task", "Worker", "TaskSet", "heartbeat_expires", "truncate",
           "HEARTBEAT_EXPIRE_WINDOW", "HEARTBEAT_DRIFT_MAX")

logger = logging.getLogger(__name__)

#: Percentage of a worker's heartbeat interval after which it counts as offline.
HEARTBEAT_EXPIRE_WINDOW = 200

#: Seconds between an event's timestamp and its arrival beyond which clocks look out of sync.
HEARTBEAT_DRIFT_MAX = 16

DRIFT_WARNING = ("Substantial drift from %s may mean clocks are out of sync.  Current drift is "
                 "%s seconds.  [orig: %s recv: %s]")

#: The state each task event subject moves a task to.
TASK_EVENT_TO_STATE = {
    "sent": states.PENDING,
    "received": states.RECEIVED,
    "started": states.STARTED,
    "failed": states.FAILURE,
    "retried": states.RETRY,
    "succeeded": states.SUCCESS,
    "revoked": states.REVOKED,
    "rejected": states.REJECTED,
}

#: Characters kept of a big task field (args, kwargs, result, exception, traceback).
DEFAULT_MAX_FIELD_SIZE = 16384

#: The task fields that can be big, and are cut to ``max_field_size``.
BIG_FIELDS = ("args", "kwargs", "result", "exception", "traceback")

TRUNCATION_MARK = "... [{} more characters truncated by evtools]"


def truncate(value: str, limit: int) -> str:
    """Return ``value`` cut to ``limit`` characters, marked as truncated."""
    return value[:limit] + TRUNCATION_MARK.format(len(value) - limit)


#: How many distinct repeated strings (task names, types, clients, queues) are shared at most.
SHARED_STRINGS_LIMIT = 4096

#: The fewest task type names :meth:`State.task_types` remembers, whatever the task limit.
SEEN_TYPES_MIN = 1000


def heartbeat_expires(timestamp: float, freq: float = 60,
                      expire_window: float = HEARTBEAT_EXPIRE_WINDOW) -> float:
    """Return when a worker that sent a heartbeat at ``timestamp`` every ``freq`` s expires."""
    if isinstance(freq, Decimal):
        freq = float(freq)
    if isinstance(timestamp, Decimal):
        timestamp = float(timestamp)
    return timestamp + freq * (expire_window / 1e2)


def _number(value: Any, default: float = 0.0) -> float:
    """Return ``value`` if it is a finite real number, else ``default``."""
    if type(value) is float:
        return value if math.isfinite(value) else default
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        return float(value)
    return default


class _FieldDefaults:
    """Mixin: slots that were never set read as their class default instead of raising."""

    __slots__ = ()
    _defaults: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        try:
            return self._defaults[name]
        except KeyError:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}") from None


class Worker(_FieldDefaults):
    """What is known of one worker, from its heartbeats and the task events it sent."""

    heartbeat_max = 4
    expire_window = HEARTBEAT_EXPIRE_WINDOW

    _fields = ("hostname", "pid", "freq", "heartbeats", "clock", "active", "processed",
               "loadavg", "sw_ident", "sw_ver", "sw_sys")
    __slots__ = _fields + ("utcoffset", "timestamp", "type", "local_received", "_drift_warned",
                           "_id", "_generation", "__dict__", "__weakref__")
    _defaults = {"utcoffset": None, "timestamp": None, "type": None, "local_received": None}
    hostname: Any  # a string for every worker a State keeps; None for one made by hand

    def __init__(self, hostname: str | None = None, pid: int | None = None, freq: float = 60,
                 heartbeats: list[float] | None = None, clock: int = 0, active: int | None = None,
                 processed: int | None = None, loadavg: list[float] | None = None,
                 sw_ident: str | None = None, sw_ver: str | None = None,
                 sw_sys: str | None = None) -> None:
        self.hostname = hostname
        self.pid = pid
        self.freq = freq
        self.heartbeats = [] if heartbeats is None else heartbeats
        self.clock = clock or 0
        self.active = active
        self.processed = processed
        self.loadavg = loadavg
        self.sw_ident = sw_ident
        self.sw_ver = sw_ver
        self.sw_sys = sw_sys
        self._drift_warned = False
        self._id: tuple[Any, str] | None = None
        self._generation = 0

    def __reduce__(self) -> tuple:
        args = (self.hostname, self.pid, self.freq, self.heartbeats, self.clock, self.active,
                self.processed, self.loadavg, self.sw_ident, self.sw_ver, self.sw_sys)
        extras = {name: getattr(self, name) for name in self._defaults}
        extras.update(self.__dict__)
        return self.__class__, args, extras

    def __setstate__(self, extras: dict[str, Any]) -> None:
        self._apply(extras)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Worker):
            return self.hostname == other.hostname
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.hostname)

    def event(self, type_: str | None, timestamp: float | None = None,
              local_received: float | None = None, fields: Mapping[str, Any] | None = None,
              max_drift: float = HEARTBEAT_DRIFT_MAX) -> None:
        """Apply one event: set its fields, then record a heartbeat (or forget them when offline)."""
        if fields:
            self._apply(fields)
        if type_ == "offline":
            self.heartbeats.clear()
            return
        self._heartbeat(timestamp, local_received, max_drift)

    def _heartbeat(self, timestamp: Any, local_received: Any, max_drift: float) -> None:
        """Record ``local_received`` as a heartbeat of an event sent at ``timestamp``."""
        if not local_received or not timestamp:
            return
        if (type(timestamp) is not float or type(local_received) is not float
                or not 1 - max_drift < local_received - timestamp < max_drift - 1):
            # Only a gap this wide can make the whole-second drift exceed max_drift.
            try:
                drift = abs(int(local_received) - int(timestamp))
            except (TypeError, ValueError, OverflowError):
                return
            if drift > max_drift and not self._drift_warned:
                self._drift_warned = True
                self._warn_drift(drift, local_received, timestamp)
        heartbeats = self.heartbeats
        if len(heartbeats) > self.heartbeat_max - 1:
            heartbeats.pop(0)
        if heartbeats and local_received > heartbeats[-1]:
            heartbeats.append(local_received)
        else:
            bisect.insort(heartbeats, local_received)

    def _warn_drift(self, drift: float, local_received: float, timestamp: float) -> None:
        orig: Any
        recv: Any
        try:
            orig, recv = datetime.fromtimestamp(timestamp), datetime.fromtimestamp(local_received)
        except (OverflowError, OSError, ValueError):
            orig, recv = timestamp, local_received
        logger.warning(DRIFT_WARNING, self.hostname, drift, recv, orig)

    def _apply(self, fields: Mapping[str, Any]) -> None:
        settable = _WORKER_SETTABLE
        for key, value in fields.items():
            if key in settable:
                object.__setattr__(self, key, value)
            elif type(key) is str and key not in _WORKER_RESERVED and not key.startswith("_"):
                self.__dict__[key] = value

    def update(self, f: Mapping[str, Any], **kw: Any) -> None:
        """Set attributes from a mapping (and keywords)."""
        for key, value in (dict(f, **kw) if kw else f).items():
            setattr(self, key, value)

    def __repr__(self) -> str:
        return f"<Worker: {self.hostname} ({self.status_string} clock:{self.clock})>"

    @property
    def status_string(self) -> str:
        """``ONLINE`` or ``OFFLINE``."""
        return "ONLINE" if self.alive else "OFFLINE"

    @property
    def heartbeat_expires(self) -> float:
        """When this worker counts as offline unless another heartbeat arrives."""
        return heartbeat_expires(self.heartbeats[-1], _number(self.freq, 60.0), self.expire_window)

    @property
    def alive(self) -> bool:
        """True while the last heartbeat has not expired."""
        return bool(self.heartbeats and time.time() < self.heartbeat_expires)

    @property
    def heartbeat_age(self) -> float | None:
        """Seconds since the last heartbeat was received, or None before any."""
        return time.time() - self.heartbeats[-1] if self.heartbeats else None

    @property
    def id(self) -> str:
        """``hostname.pid``: this worker as the origin of events."""
        cached = self._id
        if cached is None or cached[0] is not self.pid:
            cached = self._id = (self.pid, f"{self.hostname}.{self.pid}")
        return cached[1]


_WORKER_SETTABLE = frozenset(Worker.__slots__) - {"heartbeats", "_drift_warned", "_id",
                                                  "_generation", "__dict__", "__weakref__"}
_WORKER_RESERVED = frozenset(name for name in dir(Worker)) | {"event", "heartbeats"}


class TaskSet:
    """A live, read-only set of tasks held by uuid (what Celery keeps in a ``WeakSet``).

    Iterating yields the :class:`Task` objects still in the state; tasks the state forgot
    drop out. ``len()`` counts those too.
    """

    __slots__ = ("uuids", "_tasks")

    def __init__(self, tasks: Mapping[str, Task], uuids: Iterable[str] = ()) -> None:
        self._tasks = tasks
        self.uuids: dict[str, None] = dict.fromkeys(uuids)

    def add(self, task: Task) -> None:
        """Add ``task`` (by its uuid)."""
        self.uuids[task.uuid] = None

    def discard(self, task: Task | str) -> None:
        """Remove a task or uuid if present."""
        self.uuids.pop(task if isinstance(task, str) else task.uuid, None)

    def update(self, tasks: Iterable[Task]) -> None:
        """Add several tasks."""
        for task in tasks:
            if task.uuid is not None:
                self.uuids[task.uuid] = None

    def __iter__(self) -> Iterator[Task]:
        get = self._tasks.get
        for uuid in list(self.uuids):
            task = get(uuid)
            if task is not None:
                yield task

    def __len__(self) -> int:
        get = self._tasks.get
        return sum(1 for uuid in self.uuids if get(uuid) is not None)

    def __bool__(self) -> bool:
        return any(True for _ in self)

    def __contains__(self, task: object) -> bool:
        uuid = getattr(task, "uuid", None)
        return uuid in self.uuids and self._tasks.get(uuid) is task

    def __repr__(self) -> str:
        return f"<TaskSet: {len(self)} tasks>"


class Task(_FieldDefaults):
    """What is known of one task, merged from its events in whatever order they arrived."""

    _fields = ("uuid", "name", "state", "received", "sent", "started", "rejected", "succeeded",
               "failed", "retried", "revoked", "args", "kwargs", "eta", "expires", "retries",
               "worker", "result", "exception", "timestamp", "runtime", "traceback", "exchange",
               "routing_key", "clock", "client", "root", "root_id", "parent", "parent_id",
               "children")
    _event_fields = ("hostname", "pid", "utcoffset", "local_received", "type", "queue",
                     "terminated", "signum", "expired", "requeue")
    __slots__ = tuple(f for f in _fields if f not in {"root", "parent", "children"}) + \
        _event_fields + ("cluster_state", "_children", "_parent_links", "_newest", "_oldest",
                         "_indexed_name", "_indexed_worker", "_generation", "__dict__",
                         "__weakref__")
    _defaults = dict.fromkeys(_fields + _event_fields)
    _defaults.update(state=states.PENDING, clock=0, _children=None, _parent_links=None,
                     _newest=None, _oldest=None, _indexed_name=None, _indexed_worker=None,
                     cluster_state=None, _generation=0)

    # What mypy should know of the slots (values come from __init__ and events). A task in a
    # State always has a string uuid; one made by hand may have none, as in Celery.
    uuid: Any
    name: Any
    state: str
    clock: int
    worker: Worker | None
    client: Any
    hostname: Any
    parent_id: Any
    root_id: Any
    timestamp: Any
    cluster_state: State | None
    _children: TaskSet | None
    _parent_links: set[str] | None
    _newest: tuple | None
    _oldest: tuple | None
    _indexed_name: str | None
    _indexed_worker: Worker | None
    _generation: int

    #: How to merge an event that logically happened before the current state: only these
    #: fields are taken from an event moving to that state (a late task-received still
    #: supplies the name and arguments, but not its state).
    merge_rules = {
        states.RECEIVED: ("name", "args", "kwargs", "parent_id", "root_id", "retries", "eta",
                          "expires"),
    }

    #: What :meth:`info` shows by default.
    _info_fields = ("args", "kwargs", "retries", "result", "eta", "runtime", "expires",
                    "exception", "exchange", "routing_key", "root_id", "parent_id")

    def __init__(self, uuid: str | None = None, cluster_state: State | None = None,
                 children: Iterable[str] | None = None, **kwargs: Any) -> None:
        self.uuid = uuid
        self.state = states.PENDING
        self.clock = 0
        self.cluster_state = cluster_state
        self._newest = self._oldest = None
        self._indexed_name = self._indexed_worker = None
        self._children = self._parent_links = None
        if children:
            self._children_set().uuids.update(dict.fromkeys(children))
        if kwargs:
            kwargs.pop("root", None)
            kwargs.pop("parent", None)
            state = kwargs.pop("state", None)
            self._apply(kwargs)
            if state is not None:
                self.state = state

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Task):
            return self.uuid == other.uuid
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.uuid)

    def event(self, type_: str, timestamp: float | None = None, local_received: float | None = None,
              fields: Mapping[str, Any] | None = None) -> None:
        """Merge one event (``type_`` is the subject: ``'succeeded'``) into this task."""
        self._merge(type_, timestamp, fields, Task._apply)

    def _merge(self, type_: str, timestamp: float | None, fields: Mapping[str, Any] | None,
               write: Callable[[Task, Mapping[str, Any]], None]) -> None:
        """Merge one event, copying fields with ``write(task, fields)``."""
        state = TASK_EVENT_TO_STATE.get(type_)
        if state is not None:
            setattr(self, type_, timestamp)  # e.g. task.succeeded = timestamp
        else:
            state = type_.upper()  # a custom state such as PROGRESS
        current = self.state
        if (state != RETRY and current != RETRY
                and PRECEDENCE_LOOKUP.get(state, NONE_PRECEDENCE)
                > PRECEDENCE_LOOKUP.get(current, NONE_PRECEDENCE)):
            # This event happened before the state the task is in: merge, don't move back.
            keep = self.merge_rules.get(state)
            if keep is not None and fields:
                fields = {k: v for k, v in fields.items() if k in keep}
            if fields:
                write(self, fields)
        else:
            if fields:
                write(self, fields)
            self.state = state
            self.timestamp = timestamp

    def _apply(self, fields: Mapping[str, Any]) -> None:
        settable = _TASK_SETTABLE
        for key, value in fields.items():
            if key in settable:
                setattr(self, key, value)
            elif type(key) is str and key not in _TASK_RESERVED and not key.startswith("_"):
                self.__dict__[key] = value

    def info(self, fields: Iterable[str] | None = None, extra: Iterable[str] | None = None) -> dict[str, Any]:
        """Return the fields worth showing (those that are not None)."""
        keys = list(self._info_fields if fields is None else fields) + list(extra or ())
        found = {}
        for key in keys:
            value = getattr(self, key, None)
            if value is not None:
                found[key] = value
        return found

    def __repr__(self) -> str:
        return f"<Task: {self.name}({self.uuid}) {self.state} clock:{self.clock}>"

    def as_dict(self) -> dict[str, Any]:
        """Return the public fields as plain data (children, root and parent as ids)."""
        result = {}
        for key in self._fields:
            if key == "children":
                result[key] = [task.id for task in self.children]
            elif key == "root":
                result[key] = self.root_id
            elif key == "parent":
                result[key] = self.parent_id
            else:
                result[key] = getattr(self, key)
        return result

    def __reduce__(self) -> tuple:
        fields = self.as_dict()
        fields.update((k, getattr(self, k)) for k in self._event_fields if getattr(self, k) is not None)
        fields.update(self.__dict__)
        return _rebuild_task, (self.__class__, fields)

    @property
    def id(self) -> str | None:
        """The task's uuid."""
        return self.uuid

    @property
    def origin(self) -> str | None:
        """Who sent the last event: the client, or ``hostname.pid`` of the worker."""
        return self.client if self.worker is None else self.worker.id

    @property
    def ready(self) -> bool:
        """True once the task succeeded, failed or was revoked."""
        return self.state in states.READY_STATES

    @property
    def children(self) -> TaskSet:
        """The tasks whose ``parent_id`` is this task, among those still in the state."""
        return self._children_set()

    def _children_set(self) -> TaskSet:
        children = self._children
        if children is None:
            tasks = self.cluster_state.tasks.data if self.cluster_state is not None else {}
            children = self._children = TaskSet(tasks)
        return children

    def _link_parent(self, parent_id: str) -> None:
        """Remember that ``parent_id`` lists this task as a child (or waits to)."""
        links = self._parent_links
        if links is None:
            self._parent_links = {parent_id}
        else:
            links.add(parent_id)

    @property
    def parent(self) -> Task | None:
        """The parent task, if it is in the state."""
        return self._lookup(self.parent_id)

    @property
    def root(self) -> Task | None:
        """The root task of this task's workflow, if it is in the state."""
        return self._lookup(self.root_id)

    def _lookup(self, uuid: str | None) -> Task | None:
        if not uuid or self.cluster_state is None:
            return None
        return self.cluster_state.tasks.data.get(uuid)


_TASK_SETTABLE = frozenset(Task._fields + Task._event_fields) - {"root", "parent", "children",
                                                                  "worker", "uuid", "state"}
_TASK_RESERVED = frozenset(dir(Task)) | {"cluster_state", "worker", "children", "root", "parent",
                                         "event", "uuid", "state"}


#: How the State copies task event fields: big ones cut, repeated strings shared.
TASK_FIELDS = FieldSpec(slots=_TASK_SETTABLE, big=frozenset(BIG_FIELDS),
                        shared=frozenset({"type", "name", "hostname", "queue", "exchange",
                                          "routing_key"}),
                        reserved=_TASK_RESERVED)


def _rebuild_task(cls: type[Task], fields: dict[str, Any]) -> Task:
    fields = dict(fields)
    uuid = fields.pop("uuid", None)
    children = fields.pop("children", None)
    worker = fields.pop("worker", None)
    task = cls(uuid, children=children, **fields)
    task.worker = worker
    return task


class _TaskIndex(dict):
    """A mapping of key -> :class:`TaskSet`, callable for a time-ordered listing (Celery's API)."""

    def __init__(self, lister: Callable[..., Iterator[tuple[str, Task]]], tasks: Mapping[str, Task]) -> None:
        super().__init__()
        self._lister = lister
        self._tasks = tasks

    def __missing__(self, key: str) -> TaskSet:
        return TaskSet(self._tasks)

    def __call__(self, key: str, limit: int | None = None, reverse: bool = True) -> Iterator[tuple[str, Task]]:
        return self._lister(key, limit=limit, reverse=reverse)

    def add(self, key: str, task: Task) -> None:
        found = dict.get(self, key)
        if found is None:
            found = self[key] = TaskSet(self._tasks)
        if task.uuid is not None:
            found.uuids[task.uuid] = None

    def discard(self, key: str, uuid: str) -> None:
        found = dict.get(self, key)
        if found is not None:
            found.uuids.pop(uuid, None)
            if not found.uuids:
                del self[key]


#: The classes under other names, for annotations inside :class:`State` (whose own ``Task``
#: and ``Worker`` attributes, Celery's API, shadow them there).
_Task = Task
_Worker = Worker


class State:
    """The cluster as events describe it: workers, tasks, and indexes over them.

    Feed it with :meth:`event` (typically as the receiver's ``'*'`` handler). Every map it
    keeps is bounded: ``max_tasks_in_memory`` tasks and ``max_workers_in_memory`` workers,
    and every index forgets what they forget. As in Celery, the first seen is forgotten
    first: a task's own events do not renew it, but reading it as ``state.tasks[uuid]``
    (or with :meth:`get_or_create_task`) or an event of one of its children does.
    """

    Worker: ClassVar[type[_Worker]] = _Worker
    Task: ClassVar[type[_Task]] = _Task
    heap_multiplier = 4  # kept for Celery compatibility; the timeline needs no multiplier

    def __init__(self, callback: Callable[[State, dict], None] | None = None,
                 workers: Mapping[str, _Worker] | None = None, tasks: Mapping[str, _Task] | None = None,
                 taskheap: Any = None, max_workers_in_memory: int = 5000,
                 max_tasks_in_memory: int = 10000,
                 on_node_join: Callable[[_Worker], None] | None = None,
                 on_node_leave: Callable[[_Worker], None] | None = None,
                 tasks_by_type: Any = None, tasks_by_worker: Any = None,
                 max_field_size: int | None = DEFAULT_MAX_FIELD_SIZE) -> None:
        self.event_callback = callback
        #: args, kwargs, result, exception and traceback longer than this are cut on ingest
        #: (None keeps them whole), so one giant task cannot exhaust memory.
        self.max_field_size = max_field_size
        self.max_workers_in_memory = max_workers_in_memory
        self.max_tasks_in_memory = max_tasks_in_memory
        self.on_node_join = on_node_join
        self.on_node_leave = on_node_leave
        self.event_count = 0
        self.task_count = 0
        #: Counts every event applied and is never reset: what changed since a picture.
        self.generation = 0
        self.handlers: dict[str, Callable[[str, dict], Any]] = {}
        #: Events the state could not use, by kind (``task-without-uuid``, ``no-type``...).
        self.dropped: Counter[str] = Counter()
        #: Big fields cut to ``max_field_size`` so far.
        self.truncated = 0
        self._strings: dict[str, str] = {}
        self._type_parts: dict[str, tuple[str, str]] = {}
        self._task_fields = WriterCache(TASK_FIELDS, self, self._strings.setdefault, truncate)
        self._write_task_fields = self._task_fields.write
        self._mutex = threading.RLock()
        #: Names of the task types seen (Celery keeps every one; here the newest are kept).
        self._seen_types: LRUMap[str, None] = LRUMap(max(max_tasks_in_memory, SEEN_TYPES_MIN))
        #: Children that named a parent the state does not hold (yet), by parent uuid.
        self._pending_children: LRUMap[str, dict[str, None]] = LRUMap(
            max_tasks_in_memory, self._forget_pending)
        self._workers: LRUMap = self._adopt(workers, max_workers_in_memory, None)
        self._tasks: LRUMap = self._adopt(tasks, max_tasks_in_memory, self._forget_task)
        self._reindex()

    def _adopt(self, given: Mapping | None, limit: int, on_evict: Callable | None) -> LRUMap:
        """Return ``given`` as an :class:`LRUMap` of ``limit`` items (wrapped if it is not one)."""
        if isinstance(given, LRUMap):
            given.on_evict = on_evict
            return given
        adopted: LRUMap = LRUMap(limit, on_evict)
        if given:
            adopted.data.update(getattr(given, "data", given))
        return adopted

    @property
    def tasks(self) -> LRUMap:
        """The tasks by uuid, next to be forgotten first (see the class docstring)."""
        return self._tasks

    @tasks.setter
    def tasks(self, tasks: Mapping[str, _Task]) -> None:
        with self._mutex:
            self._tasks = self._adopt(tasks, self.max_tasks_in_memory, self._forget_task)
            self._reindex()

    @property
    def workers(self) -> LRUMap:
        """The workers by hostname, first seen (or read with ``[]``) first."""
        return self._workers

    @workers.setter
    def workers(self, workers: Mapping[str, _Worker]) -> None:
        with self._mutex:
            self._workers = self._adopt(workers, self.max_workers_in_memory, None)

    # -- locking ---------------------------------------------------------------------------

    def freeze_while(self, fun: Callable[..., Any], *args: Any, clear_after: bool = False,
                     **kwargs: Any) -> Any:
        """Call ``fun`` with no event applied meanwhile; then clear if ``clear_after``."""
        with self._mutex:
            try:
                return fun(*args, **kwargs)
            finally:
                if clear_after:
                    self._clear()

    def clear_tasks(self, ready: bool = True) -> None:
        """Forget finished tasks (``ready=True``) or all tasks, and the time ordering."""
        with self._mutex:
            self._clear_tasks(ready)

    def _clear_tasks(self, ready: bool = True) -> None:
        data = self._tasks.data
        if ready:
            ready_states = states.READY_STATES
            gone = [(uuid, task) for uuid, task in data.items() if task.state in ready_states]
            for uuid, _ in gone:
                del data[uuid]
        else:
            gone = list(data.items())
            data.clear()
        for uuid, task in gone:
            self._forget_task(uuid, task)
        # As in Celery, the ordering starts again: kept tasks return with their next event.
        self._timeline.clear()
        for task in data.values():
            task._newest = task._oldest = None

    def _clear(self, ready: bool = True) -> None:
        self.event_count = 0
        self.task_count = 0
        self._workers.clear()
        self._clear_tasks(ready)

    def clear(self, ready: bool = True) -> None:
        """Forget all workers and (finished, or all) tasks; reset the counters."""
        with self._mutex:
            self._clear(ready)

    # -- lookups ---------------------------------------------------------------------------

    def get_or_create_worker(self, hostname: str, **kwargs: Any) -> tuple[_Worker, bool]:
        """Return ``(worker, created)`` for ``hostname``, updating it with ``kwargs``."""
        try:
            worker = self._workers[hostname]
        except KeyError:
            worker = self._workers[hostname] = self.Worker(hostname, **kwargs)
            return worker, True
        if kwargs:
            worker.update(kwargs)
        return worker, False

    def get_or_create_task(self, uuid: str) -> tuple[_Task, bool]:
        """Return ``(task, created)`` for ``uuid``."""
        try:
            return self._tasks[uuid], False
        except KeyError:
            return self._new_task(uuid), True

    # -- applying events -------------------------------------------------------------------

    def event(self, event: dict[str, Any]) -> Any:
        """Apply one event; return ``((task_or_worker, created), subject)`` as Celery does.

        An event Celery's State would refuse (no ``type``, a task event without ``uuid``,
        ``hostname``, ``timestamp``, ``local_received`` or ``clock``, a worker event without
        ``hostname``, ``timestamp`` or ``local_received``) changes nothing but the counters:
        it is counted in :attr:`dropped` by kind and None is returned.
        """
        with self._mutex:
            self.event_count += 1
            self.generation += 1
            if self.event_callback:
                self.event_callback(self, event)
            try:
                type_ = event["type"]
            except (KeyError, TypeError):
                self._drop("no-type")
                return None
            try:
                group, subject = self._type_parts[type_]
            except (KeyError, TypeError):
                if type(type_) is not str:
                    self._drop("no-type")
                    return None
                group, subject = self._split_type(type_)
            handler = self.handlers.get(group)
            if handler is not None:
                return handler(subject, event), subject
            result: tuple[Any, bool] | None
            if group == "task":
                result = self._task_event(subject, event)
            elif group == "worker":
                result = self._worker_event(subject, event)
            else:
                return None
            return None if result is None else (result, subject)

    def task_event(self, type_: str, fields: Mapping[str, Any]) -> Any:
        """Apply a task event given its subject (deprecated in Celery; use :meth:`event`)."""
        result = self.event(dict(fields, type=f"task-{type_}"))
        return result[0] if result else None

    def worker_event(self, type_: str, fields: Mapping[str, Any]) -> Any:
        """Apply a worker event given its subject (deprecated in Celery; use :meth:`event`)."""
        result = self.event(dict(fields, type=f"worker-{type_}"))
        return result[0] if result else None

    def _drop(self, kind: str) -> None:
        if kind not in self.dropped:
            logger.warning("state: ignoring an event: %s (counted from now on)", kind)
        self.dropped[kind] += 1

    def _split_type(self, type_: str) -> tuple[str, str]:
        """Return ``(group, subject)`` of an event type, remembering the answer."""
        group, _, subject = type_.partition("-")
        if len(self._type_parts) >= SHARED_STRINGS_LIMIT:
            self._type_parts.clear()
        self._type_parts[type_] = group, subject
        return group, subject

    def _worker_event(self, subject: str, event: dict[str, Any]) -> tuple[_Worker, bool] | None:
        try:
            hostname, timestamp, local_received = (event["hostname"], event["timestamp"],
                                                   event["local_received"])
        except KeyError as missing:
            self._drop(f"worker-without-{missing.args[0]}")
            return None
        if type(hostname) is not str:
            self._drop("worker-without-hostname")
            return None
        is_offline = subject == "offline"
        workers = self._workers
        worker = workers.data.get(hostname)
        created = False
        if worker is None:
            worker = self.Worker(hostname)
            if not is_offline:
                workers[hostname] = worker
                created = True
        worker._generation = self.generation
        worker.event(subject, _number(timestamp, 0.0) or None,
                     _number(local_received, 0.0) or None, event)
        if self.on_node_join and (created or subject == "online"):
            self.on_node_join(worker)
        if is_offline and self.on_node_leave:
            # As in Celery: an offline worker is forgotten only when someone listens for it.
            self.on_node_leave(worker)
            workers.data.pop(hostname, None)
        return worker, created

    def _new_task(self, uuid: str) -> _Task:
        task = self.Task(uuid, cluster_state=self)
        self._tasks[uuid] = task
        return task

    def _task_event(self, subject: str, event: dict[str, Any]) -> tuple[_Task, bool] | None:
        try:
            uuid, hostname, raw_timestamp, raw_received, clock = (
                event["uuid"], event["hostname"], event["timestamp"], event["local_received"],
                event["clock"])
        except KeyError as missing:
            self._drop(f"task-without-{missing.args[0]}")
            return None
        if type(uuid) is not str or not uuid:
            self._drop("task-without-uuid")
            return None
        if type(hostname) is not str:
            hostname = ""
        timestamp = raw_timestamp if type(raw_timestamp) is float else _number(raw_timestamp)
        local_received = raw_received if type(raw_received) is float else _number(raw_received)
        if type(clock) is not int:
            clock = 0
        generation = self.generation
        tasks = self._tasks.data
        found = tasks.get(uuid)
        created = found is None
        task: _Task = self._new_task(uuid) if found is None else found
        task._generation = generation
        worker = None
        if subject == "sent":  # sent by a client, not by a worker
            origin = hostname
        elif hostname:
            worker = self._workers.data.get(hostname)
            if worker is None:
                worker = self._workers[hostname] = self.Worker(hostname)
            task.worker = worker
            worker._generation = generation
            if local_received:
                # Celery passes these two swapped here: the worker's heartbeat list gets the
                # event's own timestamp. Kept, so liveness matches Celery's.
                worker._heartbeat(local_received, timestamp, HEARTBEAT_DRIFT_MAX)
            origin = worker.id
        else:
            origin = ""
        self._timeline.add(task, (clock, origin, timestamp, uuid))
        if subject == "received":
            self.task_count += 1
        task._merge(subject, raw_timestamp, event, self._write_task_fields)
        if subject == "sent":
            task.client = task.hostname = self._share(hostname)
        if task.root_id == uuid and task.root_id is not uuid:
            task.root_id = task.uuid
        if task._indexed_name is not task.name or task._indexed_worker is not task.worker:
            self._index(task)
        parent_id = task.parent_id
        if parent_id and type(parent_id) is str:
            self._file_under_parent(task, parent_id)
        if uuid in self._pending_children.data:
            self._adopt_children(task)
        if len(self._strings) > SHARED_STRINGS_LIMIT:
            self._strings.clear()
        return task, created

    def _share(self, value: Any) -> Any:
        """Return the one copy of a repeated string (a bounded cache, never growing past a limit)."""
        if type(value) is not str:
            return value
        strings = self._strings
        shared = strings.get(value)
        if shared is None:
            if len(strings) >= SHARED_STRINGS_LIMIT:
                strings.clear()
            strings[value] = shared = value
        return shared

    # -- indexes ---------------------------------------------------------------------------

    def _index(self, task: _Task) -> None:
        """File ``task`` by type and by worker, moving it when its name or worker changed."""
        name, worker = task.name, task.worker
        old_name, old_worker = task._indexed_name, task._indexed_worker
        uuid = task.uuid
        if name != old_name or type(name) is not type(old_name):
            if old_name is not None:
                self.tasks_by_type.discard(old_name, uuid)
            if type(name) is str:
                name = task.name = self._share(name)
                self.tasks_by_type.add(name, task)
                self._see_type(name)
            else:
                name = None
        elif name is not None:
            name = task.name = old_name  # keep sharing the one interned string
        if worker is not old_worker:
            if old_worker is not None:
                self.tasks_by_worker.discard(old_worker.hostname, uuid)
            if worker is not None:
                self.tasks_by_worker.add(worker.hostname, task)
        task._indexed_name, task._indexed_worker = name, worker

    def _see_type(self, name: str) -> None:
        seen = self._seen_types
        if name in seen.data:
            seen.data.move_to_end(name)
        else:
            seen[name] = None

    def _file_under_parent(self, task: _Task, parent_id: str) -> None:
        """Make ``task`` a child of its parent, or wait for the parent (as Celery does, each event)."""
        uuid = task.uuid
        parent = self._tasks.data.get(parent_id)
        if parent is not None:
            self._tasks.data.move_to_end(parent_id)  # a parent in use stays, as in Celery
            parent._children_set().uuids[uuid] = None
        else:
            pending = self._pending_children
            waiting = pending.data.get(parent_id)
            if waiting is None:
                waiting = {}
                pending[parent_id] = waiting
            else:
                pending.data.move_to_end(parent_id)
            waiting[uuid] = None
        task._link_parent(parent_id)

    def _adopt_children(self, task: _Task) -> None:
        waiting = self._pending_children.data.pop(task.uuid, None)
        if waiting:
            task._children_set().uuids.update(waiting)

    def _forget_pending(self, parent_id: str, waiting: dict[str, None]) -> None:
        """A parent nobody sent is forgotten: its waiting children no longer point at it."""
        tasks = self._tasks.data
        for uuid in waiting:
            child = tasks.get(uuid)
            if child is not None and child._parent_links:
                child._parent_links.discard(parent_id)

    def _forget_task(self, uuid: str, task: _Task) -> None:
        """Remove a task the map no longer holds from every index (called on eviction)."""
        name, worker = task._indexed_name, task._indexed_worker
        if name is not None:
            self.tasks_by_type.discard(name, uuid)
        if worker is not None:
            self.tasks_by_worker.discard(worker.hostname, uuid)
        tasks = self._tasks.data
        for parent_id in task._parent_links or ():
            parent = tasks.get(parent_id)
            if parent is not None and parent._children is not None:
                parent._children.uuids.pop(uuid, None)
            waiting = self._pending_children.data.get(parent_id)
            if waiting is not None:
                waiting.pop(uuid, None)
        if task._children is not None:
            for child_id in task._children.uuids:
                child = tasks.get(child_id)
                if child is not None and child._parent_links:
                    child._parent_links.discard(uuid)
        task._parent_links = None
        task._indexed_name = task._indexed_worker = None
        task._newest = task._oldest = None

    def _reindex(self) -> None:
        """Rebuild every index from the tasks (after adopting a map, or from a pickle).

        Nothing is reordered: the tasks keep their places in the LRU order.
        """
        tasks = self._tasks.data
        self.tasks_by_type = _TaskIndex(self._tasks_by_type, tasks)
        self.tasks_by_worker = _TaskIndex(self._tasks_by_worker, tasks)
        for task in tasks.values():
            task.cluster_state = self
            task._indexed_name = task._indexed_worker = None
            task._parent_links = None
        for uuid, task in tasks.items():
            self._index(task)
            children = task._children
            if children is not None:
                children._tasks = tasks
                for child_id in list(children.uuids):
                    child = tasks.get(child_id)
                    if child is None:
                        del children.uuids[child_id]
                    else:
                        child._link_parent(uuid)
        for parent_id, waiting in self._pending_children.data.items():
            for child_id in list(waiting):
                child = tasks.get(child_id)
                if child is None:
                    del waiting[child_id]
                else:
                    child._link_parent(parent_id)
        self._rebuild_timeline()

    def _rebuild_timeline(self) -> None:
        self._timeline = Timeline(self._tasks.data)
        for task in self._tasks.data.values():
            task._newest = task._oldest = None
            origin = task.origin or ""
            clock = task.clock if type(task.clock) is int else 0
            self._timeline.add(task, time_key(clock, origin, _number(task.timestamp), task.uuid))

    def rebuild_taskheap(self) -> None:
        """Rebuild the time ordering from the tasks, one entry each at its current clock (Celery's name)."""
        with self._mutex:
            self._rebuild_timeline()

    # -- queries ---------------------------------------------------------------------------

    def itertasks(self, limit: int | None = None) -> Iterator[tuple[str, _Task]]:
        """Yield ``(uuid, task)`` in the order they will be forgotten: first seen first."""
        return islice(list(self._tasks.data.items()), limit or None)

    def tasks_by_time(self, limit: int | None = None, reverse: bool = True) -> Iterator[tuple[str, _Task]]:
        """Yield ``(uuid, task)`` by event clock: newest event first (or oldest first)."""
        return islice(self._timeline.iter_tasks(reverse), limit)

    tasks_by_timestamp = tasks_by_time

    def _tasks_by_type(self, name: str, limit: int | None = None,
                       reverse: bool = True) -> Iterator[tuple[str, _Task]]:
        return islice(((uuid, task) for uuid, task in self.tasks_by_time(reverse=reverse)
                       if task.name == name), limit)

    def _tasks_by_worker(self, hostname: str, limit: int | None = None,
                         reverse: bool = True) -> Iterator[tuple[str, _Task]]:
        return islice(((uuid, task) for uuid, task in self.tasks_by_time(reverse=reverse)
                       if task.worker is not None and task.worker.hostname == hostname), limit)

    def tasks_changed_since(self, generation: int) -> list[_Task]:
        """Return the tasks an event touched after :attr:`generation` was ``generation``."""
        return [task for task in self._tasks.data.values() if task._generation > generation]

    def workers_changed_since(self, generation: int) -> list[_Worker]:
        """Return the workers an event touched after :attr:`generation` was ``generation``."""
        return [worker for worker in self._workers.data.values() if worker._generation > generation]

    def task_types(self) -> list[str]:
        """Return the sorted names of the task types seen."""
        return sorted(self._seen_types.data)

    def alive_workers(self) -> Iterator[_Worker]:
        """Yield the workers whose heartbeat has not expired."""
        return (w for w in list(self._workers.data.values()) if w.alive)

    def __repr__(self) -> str:
        return f"<State: events={self.event_count} tasks={self.task_count}>"

    # -- pickling --------------------------------------------------------------------------

    def __reduce__(self) -> tuple:
        args = (self.event_callback, self._workers, self._tasks, None,
                self.max_workers_in_memory, self.max_tasks_in_memory,
                self.on_node_join, self.on_node_leave, None, None, self.max_field_size)
        return self.__class__, args, self._pickled_extras()

    def _pickled_extras(self) -> dict[str, Any]:
        """What Celery's pickle loses and evtools' keeps: counters, seen types, order, orphans."""
        return {
            "event_count": self.event_count, "task_count": self.task_count,
            "generation": self.generation, "dropped": dict(self.dropped),
            "truncated": self.truncated, "seen_types": list(self._seen_types.data),
            "pending_children": [(parent_id, list(waiting))
                                 for parent_id, waiting in self._pending_children.data.items()],
            "timeline": {uuid: (task._newest, task._oldest)
                         for uuid, task in self._tasks.data.items()},
        }

    def __setstate__(self, extras: dict[str, Any]) -> None:
        with self._mutex:
            self.event_count = extras.get("event_count", 0)
            self.task_count = extras.get("task_count", 0)
            self.generation = extras.get("generation", 0)
            self.dropped.update(extras.get("dropped", {}))
            self.truncated = extras.get("truncated", 0)
            for name in extras.get("seen_types", ()):
                self._seen_types[name] = None
            for parent_id, waiting in extras.get("pending_children", ()):
                self._pending_children[parent_id] = dict.fromkeys(waiting)
            self._reindex()
            self._restore_timeline(extras.get("timeline", {}))

    def _restore_timeline(self, keys: Mapping[str, tuple[Any, Any]]) -> None:
        timeline = self._timeline = Timeline(self._tasks.data)
        for uuid, task in self._tasks.data.items():
            newest, oldest = keys.get(uuid, (None, None))
            task._newest, task._oldest = newest, oldest
            if newest is not None:
                timeline.newest.append(newest)
            if oldest is not None:
                timeline.oldest.append(oldest)
        timeline.newest.sort()
        timeline.oldest.sort()
        timeline.compact()
