"""The exporter's model: counters, histograms and gauges built from events, as plain dicts.

Label rules follow celery-exporter so its dashboards and alerts work unchanged: the hostname
label is the part after ``@``; a task event zero-fills every counter but ``task-sent`` for its
label set; ``exception`` is the class name parsed from the exception's repr; the queue comes
from ``task-sent`` (else the default queue name); workers go up on online/heartbeat and down on
offline or after the worker timeout, and their series are purged after a further delay.

Everything here is guarded by one lock: events come from the receiver's thread, scrapes and
the broker refresher from others. A scrape takes a :meth:`CeleryMetrics.snapshot` (copies made
under the lock) and formats it outside.
"""

from __future__ import annotations

import bisect
import dataclasses
import fnmatch
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ..state import State
from ..tz import adjust_timestamp, utcoffset
from .config import TASK_EVENT_TYPES, ExporterConfig

__all__ = ("CeleryMetrics", "Histogram", "Snapshot", "HealthSnapshot", "BrokerGauges", "OVERFLOW",
           "hostname_label", "exception_class_name")

#: Every label value of the one series that takes a capped family's new label sets.
OVERFLOW = "__overflow__"

#: Event lag buckets (``local_received - timestamp``), seconds.
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, float("inf"))

_EXCEPTION_CLASS = re.compile(r"^(\w+)\(")

Labels = tuple[str, ...]

#: The types a timestamp may have (the receiver refuses others; bool is not one).
_NUMBERS = frozenset({int, float})


def hostname_label(nodename: Any) -> str:
    """Return the hostname part of a Celery node name (``w1@host`` -> ``host``)."""
    text = str(nodename)
    return text.split("@", 1)[1] if "@" in text else text


def exception_class_name(exception_repr: Any) -> str:
    """Return the class name in an exception's repr (``ValueError('x')`` -> ``ValueError``)."""
    match = _EXCEPTION_CLASS.match(exception_repr) if isinstance(exception_repr, str) else None
    return match.group(1) if match else "UnknownException"


def _eta_timestamp(eta: Any) -> float | None:
    """Return an ISO 8601 ETA as a timestamp (naive means local time, as Celery reads it)."""
    if isinstance(eta, datetime):
        return eta.timestamp()
    if not isinstance(eta, str) or not eta:
        return None
    try:
        return datetime.fromisoformat(eta).timestamp()
    except ValueError:
        return None


class Histogram:
    """Observations counted per bucket (not cumulative), with their sum and creation time."""

    __slots__ = ("counts", "total", "created")

    def __init__(self, size: int, created: float | None = None) -> None:
        self.counts = [0] * size
        self.total = 0.0
        #: When the series was created (a timestamp, as prometheus_client's ``_created``).
        self.created = created

    def observe(self, bounds: tuple[float, ...], value: float) -> None:
        """Count ``value`` in the first bucket whose upper bound is at least ``value``."""
        self.counts[bisect.bisect_left(bounds, value)] += 1
        self.total += value

    def copy(self) -> Histogram:
        """Return an independent copy."""
        other = Histogram(0, self.created)
        other.counts = list(self.counts)
        other.total = self.total
        return other


@dataclasses.dataclass(slots=True)
class BrokerGauges:
    """What the broker refresher measured last: per queue, and when."""

    queue_length: dict[str, float] = dataclasses.field(default_factory=dict)
    consumer_count: dict[str, float] = dataclasses.field(default_factory=dict)
    worker_count: dict[str, float] = dataclasses.field(default_factory=dict)
    process_count: dict[str, float] = dataclasses.field(default_factory=dict)
    refreshed_at: float | None = None


@dataclasses.dataclass(slots=True)
class Snapshot:
    """A consistent copy of celery-exporter's series, taken at one instant for one rendering."""

    counters: dict[str, dict[Labels, float]]
    created: dict[str, dict[Labels, float]]
    runtime: dict[Labels, Histogram]
    queue_wait: dict[Labels, Histogram]
    worker_up: dict[str, float]
    worker_active: dict[str, float]
    broker: BrokerGauges
    #: :attr:`CeleryMetrics.version` when taken: the same version means the same series.
    version: int
    taken_at: float


@dataclasses.dataclass(slots=True)
class HealthSnapshot:
    """A copy of the exporter's own counters (the ``evtools_`` families), for one scrape."""

    events_by_type: dict[str, int]
    dropped: dict[str, int]
    overflow: dict[str, int]
    lag: Histogram
    last_event_at: float | None
    broker_refreshed_at: float | None
    taken_at: float


class CeleryMetrics:
    """Aggregates celery-exporter's metrics from events; feed it with :meth:`on_event`."""

    def __init__(self, config: ExporterConfig | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config = config or ExporterConfig()
        self.clock = clock
        #: The tasks and workers the labels are read from (a task-started needs its task-sent).
        self.state = State(max_tasks_in_memory=config.max_tasks_in_memory)
        self._lock = threading.Lock()
        self._counters: dict[str, dict[Labels, float]] = {t: {} for t in TASK_EVENT_TYPES}
        self._created: dict[str, dict[Labels, float]] = {t: {} for t in TASK_EVENT_TYPES}
        self._runtime: dict[Labels, Histogram] = {}
        self._queue_wait: dict[Labels, Histogram] = {}
        self._worker_up: dict[str, float] = {}
        self._worker_active: dict[str, float] = {}
        #: hostname label -> [last seen (timestamp), forgotten]
        self._last_seen: dict[str, list[Any]] = {}
        self._broker = BrokerGauges()
        self._events_by_type: dict[str, int] = {}
        self._dropped: Counter[str] = Counter()
        self._overflow: Counter[str] = Counter()
        self._lag = Histogram(len(LAG_BUCKETS), clock())
        self.last_event_at: float | None = None
        #: Bumped by every change to the series (events, expiry, purge, broker gauges): a
        #: rendering taken at the same version is still exact.
        self.version = 0
        self._owned: dict[str, bool] = {}
        self._allowed: dict[str, bool] = {}
        self._filtering = bool(config.task_allow or config.task_deny)
        self._hostnames: dict[str, str] = {}
        #: Label sets (name, hostname, queue) every family but task-sent holds (zero-filled).
        self._zero_filled: set[Labels] = set()
        self._rewrite = (None if config.hostname_rewrite is None else
                         (re.compile(config.hostname_rewrite[0]), config.hostname_rewrite[1]))

    # -- what this exporter counts -----------------------------------------------------------

    def owns(self, event_type: str) -> bool:
        """Tell whether this exporter counts events of this type (``--type`` globs)."""
        if not self.config.types:
            return True
        owned = self._owned.get(event_type)
        if owned is None:
            owned = any(fnmatch.fnmatchcase(event_type, g) for g in self.config.types)
            if len(self._owned) < 1024:
                self._owned[event_type] = owned
        return owned

    def owns_tasks(self) -> bool:
        """Tell whether this exporter counts any task event family."""
        return any(self.owns(family) for family in self._counters)

    def owns_workers(self) -> bool:
        """Tell whether this exporter exports the worker and queue gauges (worker-heartbeat)."""
        return self.owns("worker-heartbeat")

    def _task_allowed(self, name: str) -> bool:
        allowed = self._allowed.get(name)
        if allowed is None:
            config = self.config
            allowed = ((not config.task_allow
                        or any(fnmatch.fnmatchcase(name, g) for g in config.task_allow))
                       and not any(fnmatch.fnmatchcase(name, g) for g in config.task_deny))
            if len(self._allowed) >= 65536:
                self._allowed.clear()
            self._allowed[name] = allowed
        return allowed

    def _hostname(self, nodename: Any) -> str:
        """The hostname label of a node name (after ``@``, rewritten), remembered."""
        hostname = self._hostnames.get(nodename) if type(nodename) is str else None
        if hostname is None:
            hostname = hostname_label(nodename)
            if self._rewrite is not None:
                hostname = self._rewrite[0].sub(self._rewrite[1], hostname)
            if type(nodename) is str:
                if len(self._hostnames) >= 65536:
                    self._hostnames.clear()
                self._hostnames[nodename] = hostname
        return hostname

    def _series(self, family: str, series: dict, key: Labels) -> Labels:
        """Return ``key``, or the overflow key once ``family`` holds its cap of series."""
        cap = self.config.max_series_per_family
        if not cap or key in series or len(series) < cap:
            return key
        self._overflow[family] += 1
        return (OVERFLOW,) * len(key)

    # -- events ------------------------------------------------------------------------------

    def on_event(self, event: dict[str, Any]) -> None:
        """Apply one event (as the receiver hands it over, with ``local_received``)."""
        type_ = event.get("type")
        received = event.get("local_received")
        timestamp = event.get("timestamp")
        with self._lock:
            self.version += 1
            counts, kind = self._events_by_type, type_ if type(type_) is str else str(type_)
            counts[kind] = counts.get(kind, 0) + 1
            self.last_event_at = received if isinstance(received, float) else self.clock()
            if type(received) in _NUMBERS and type(timestamp) in _NUMBERS:
                lag = received - timestamp
                if lag < 0.0:
                    lag = 0.0
                histogram = self._lag  # Histogram.observe, inlined: this runs for every event
                histogram.counts[bisect.bisect_left(LAG_BUCKETS, lag)] += 1
                histogram.total += lag
            if type_ in self._counters:
                self._task_event(type_, event)
            elif type_ == "worker-heartbeat":
                self._heartbeat(event)
            elif type_ == "worker-online":
                self._worker_status(event, online=True)
            elif type_ == "worker-offline":
                self._worker_status(event, online=False)

    def _task_event(self, type_: str, event: dict[str, Any]) -> None:
        result = self.state.event(event)
        if result is None:  # counted by the state, by kind
            return
        task = result[0][0]
        name = task.name if type(task.name) is str else str(task.name)
        if self._filtering and not self._task_allowed(name):
            self._dropped["task-name-filtered"] += 1
            return
        config = self.config
        if (config.generic_hostname_task_sent if type_ == "task-sent"
                else config.generic_hostname_worker_task):
            hostname = "generic"
        else:
            hostname = self._hostname(task.hostname)
        queue = task.queue
        if queue is None:
            queue = config.default_queue_name
        labels = (name, hostname, queue if type(queue) is str else str(queue))
        owned = not config.types or self.owns(type_)
        if labels in self._zero_filled:  # the common case: only this event's own series moves
            if owned:
                if type_ == "task-failed":
                    self._count(type_, self._failed_key(labels, task))
                elif type_ == "task-sent":
                    self._count(type_, labels)
                else:
                    self._counters[type_][labels] += 1.0
        else:
            self._zero_fill(type_, labels, task, owned)
        if not owned:
            return
        if type_ == "task-started" and task.sent is not None:
            self._observe_queue_wait(task, event, labels)
        elif type_ == "task-succeeded":
            runtime = task.runtime
            if isinstance(runtime, (int, float)):
                self._observe("task-runtime", self._runtime, labels, config.buckets, float(runtime))

    def _observe(self, family: str, series: dict[Labels, Histogram], labels: Labels,
                 bounds: tuple[float, ...], value: float) -> None:
        """Observe ``value`` in ``family``'s histogram for ``labels`` (or the overflow one)."""
        histogram = series.get(labels)
        if histogram is None:
            key = self._series(family, series, labels)
            histogram = series.get(key)
            if histogram is None:
                histogram = series[key] = Histogram(len(bounds), self.clock())
        histogram.observe(bounds, value)

    @staticmethod
    def _failed_key(labels: Labels, task: Any) -> Labels:
        """``task-failed``'s label set: the exception class name goes before the queue."""
        return (labels[0], labels[1], exception_class_name(task.exception), labels[2])

    def _count(self, family: str, key: Labels) -> None:
        """Add one to ``family``'s series ``key`` (or to the overflow series)."""
        series = self._counters[family]
        key = self._series(family, series, key)
        value = series.get(key)
        if value is None:
            series[key] = 1.0
            self._created[family][key] = self.clock()
        else:
            series[key] = value + 1.0

    def _zero_fill(self, type_: str, labels: Labels, task: Any, owned: bool) -> None:
        """Apply a task event whose label set some family lacks: every family but
        ``task-sent`` gets the label set at zero, so rates exist before the first such event
        (``task-sent`` is not zero-filled: clients, such as web servers, would add a hostname each).

        Once every such family holds it (none at its cap), the label set is remembered and
        later events take the short path in :meth:`_task_event`.
        """
        now = self.clock()
        complete = type_ != "task-failed"  # a failure fills its exception's series, not ""
        for family, series in self._counters.items():
            if family == type_:
                if not owned:  # another exporter counts these (--type)
                    complete = complete and family == "task-sent"
                    continue
                amount = 1.0
            elif family == "task-sent":
                continue
            else:
                amount = 0.0
            if family == "task-failed":
                wanted = self._failed_key(labels, task) if family == type_ else \
                    (labels[0], labels[1], "", labels[2])
            else:
                wanted = labels
            key = self._series(family, series, wanted)
            if family != "task-sent":
                complete = complete and key is wanted
            self._add(family, series, key, amount, now)
        if complete:
            self._zero_filled.add(labels)

    def _add(self, family: str, series: dict[Labels, float], key: Labels, amount: float,
             now: float) -> None:
        value = series.get(key)
        if value is None:
            series[key] = amount
            self._created[family][key] = now
        else:
            series[key] = value + amount

    def _observe_queue_wait(self, task: Any, event: dict[str, Any], labels: Labels) -> None:
        """Time from task-sent (or the ETA, when later) to task-started."""
        baseline = task.sent
        eta = _eta_timestamp(task.eta)
        if eta is not None:
            offset = event.get("utcoffset")
            if isinstance(offset, (int, float)):
                eta = adjust_timestamp(eta, offset)
            baseline = max(baseline, eta)
        wait = max(0.0, float(task.started) - float(baseline))  # clock skew can make it negative
        self._observe("task-queue-wait-time", self._queue_wait, labels,
                      self.config.queue_wait_buckets, wait)

    def _heartbeat(self, event: dict[str, Any]) -> None:
        result = self.state.event(event)
        if result is None:
            return
        if not self.owns("worker-heartbeat"):
            return
        worker = result[0][0]
        hostname = self._hostname(event.get("hostname"))
        self._last_seen[hostname] = [self._sent_at(event), False]
        self._worker_up[hostname] = 1.0 if worker.alive else 0.0
        self._worker_active[hostname] = float(worker.active or 0)

    def _worker_status(self, event: dict[str, Any], online: bool) -> None:
        if not self.owns("worker-heartbeat") or "hostname" not in event:
            return
        hostname = self._hostname(event["hostname"])
        if online:
            self._worker_up[hostname] = 1.0
            self._last_seen[hostname] = [self._sent_at(event), False]
        else:
            self._forget_worker(hostname)

    @staticmethod
    def _sent_at(event: dict[str, Any]) -> float:
        """The event's timestamp on the sender's clock (the receiver moved it to ours)."""
        timestamp = event.get("timestamp")
        if not isinstance(timestamp, (int, float)):
            return time.time()
        offset = event.get("utcoffset")
        offset = offset if isinstance(offset, (int, float)) else 0
        return timestamp + (offset - utcoffset()) * 3600

    def _forget_worker(self, hostname: str) -> None:
        seen = self._last_seen.get(hostname)
        if seen is None:
            return
        self.version += 1
        self._worker_up[hostname] = 0.0
        self._worker_active[hostname] = 0.0
        seen[1] = True
        if not self.config.purge_offline_after:
            del self._last_seen[hostname]

    def _purge_worker(self, hostname: str) -> None:
        """Remove every series one of whose label values is ``hostname``."""
        self.version += 1
        for series in (*self._counters.values(), *self._created.values(), self._runtime,
                       self._queue_wait):
            for key in [key for key in series if hostname in key]:
                del series[key]
        self._zero_filled.clear()  # refilled as events come
        self._worker_up.pop(hostname, None)
        self._worker_active.pop(hostname, None)
        del self._last_seen[hostname]

    def expire_workers(self, now: float | None = None) -> None:
        """Mark workers silent for ``worker_timeout`` down; purge those silent for longer."""
        timeout, purge = self.config.worker_timeout, self.config.purge_offline_after
        if not timeout and not purge:
            return
        now = self.clock() if now is None else now
        with self._lock:
            for hostname, (seen_at, forgotten) in list(self._last_seen.items()):
                since = now - seen_at
                if timeout and since > timeout and not forgotten:
                    self._forget_worker(hostname)
                if purge and since > purge and hostname in self._last_seen:
                    self._purge_worker(hostname)

    # -- the broker refresher's results --------------------------------------------------------

    def set_broker_gauges(self, gauges: BrokerGauges) -> None:
        """Replace the queue and consumer gauges with a fresh measurement."""
        with self._lock:
            self._broker = gauges
            self.version += 1

    def count_dropped(self, kind: str, amount: int = 1) -> None:
        """Count events this exporter could not use, by kind."""
        with self._lock:
            self._dropped[kind] += amount

    # -- scrapes -----------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """Return a copy of the series, consistent with itself (expiring workers first)."""
        self.expire_workers()
        with self._lock:
            return Snapshot(
                counters={f: dict(s) for f, s in self._counters.items()},
                created={f: dict(s) for f, s in self._created.items()},
                runtime={k: h.copy() for k, h in self._runtime.items()},
                queue_wait={k: h.copy() for k, h in self._queue_wait.items()},
                worker_up=dict(self._worker_up), worker_active=dict(self._worker_active),
                broker=self._broker, version=self.version, taken_at=self.clock())

    def health_snapshot(self) -> HealthSnapshot:
        """Return a copy of the exporter's own counters (cheap: a few small dicts)."""
        with self._lock:
            return HealthSnapshot(
                events_by_type=dict(self._events_by_type),
                dropped=dict(self._dropped + self.state.dropped), overflow=dict(self._overflow),
                lag=self._lag.copy(), last_event_at=self.last_event_at,
                broker_refreshed_at=self._broker.refreshed_at, taken_at=self.clock())
