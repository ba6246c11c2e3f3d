"""An independent model of celery-exporter's rules, on Celery's own State and prometheus_client.

It is the reference the exporter is compared with: built from celery-exporter's documented
behaviour (label rules, zero-filling, exception parsing, queue wait time), using Celery's
``celery.events.state.State`` and prometheus_client's standard Counter/Histogram/Gauge, and
none of evtools' code. Worker timeouts are left out (the tests that use it disable them).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.parser import text_string_to_metric_families

TYPES = ("task-sent", "task-received", "task-started", "task-succeeded", "task-failed",
         "task-rejected", "task-revoked", "task-retried")
WAIT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


class OracleExporter:
    """celery-exporter's event handling, as its README and tests describe it."""

    def __init__(self, generic_sent: bool = False, generic_worker: bool = False,
                 default_queue: str = "celery") -> None:
        from celery.events.state import State
        self.state = State()
        self.registry = CollectorRegistry()
        self.generic_sent, self.generic_worker = generic_sent, generic_worker
        self.default_queue = default_queue
        labels = ["name", "hostname", "queue_name"]
        self.counters = {
            t: Counter(f"celery_{t.replace('-', '_')}", t,
                       ["name", "hostname", "exception", "queue_name"] if t == "task-failed"
                       else labels, registry=self.registry)
            for t in TYPES}
        self.runtime = Histogram("celery_task_runtime", "r", labels, registry=self.registry)
        self.wait = Histogram("celery_task_queue_wait_time", "w", labels, registry=self.registry,
                              buckets=WAIT_BUCKETS)
        self.up = Gauge("celery_worker_up", "u", ["hostname"], registry=self.registry)
        self.active = Gauge("celery_worker_tasks_active", "a", ["hostname"], registry=self.registry)
        self.seen: set[str] = set()

    def on_event(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind in self.counters:
            self._task(kind, event)
        elif kind == "worker-heartbeat":
            host = event["hostname"].partition("@")[2] or event["hostname"]
            worker = self.state.event(event)[0][0]
            self.seen.add(host)
            self.up.labels(hostname=host).set(1 if worker.alive else 0)
            self.active.labels(hostname=host).set(worker.active or 0)
        elif kind in ("worker-online", "worker-offline"):
            host = event["hostname"].partition("@")[2] or event["hostname"]
            if kind == "worker-online":
                self.seen.add(host)
                self.up.labels(hostname=host).set(1)
            elif host in self.seen:
                self.up.labels(hostname=host).set(0)
                self.active.labels(hostname=host).set(0)

    def _task(self, kind: str, event: dict[str, Any]) -> None:
        self.state.event(event)
        task = self.state.tasks.get(event["uuid"])
        host = task.hostname.partition("@")[2] or task.hostname
        if kind == "task-sent" and self.generic_sent or kind != "task-sent" and self.generic_worker:
            host = "generic"
        labels = {"name": task.name, "hostname": host,
                  "queue_name": getattr(task, "queue", None) or self.default_queue}
        for family, counter in self.counters.items():
            extra = {}
            if family == "task-failed":
                match = re.match(r"^(\w+)\(", task.exception or "") if family == kind else None
                extra["exception"] = (match.group(1) if match else "UnknownException") \
                    if family == kind else ""
            if family == kind:
                counter.labels(**labels, **extra).inc()
            elif family != "task-sent":
                counter.labels(**labels, **extra).inc(0)
        if kind == "task-started" and task.sent is not None:
            baseline = task.sent
            if task.eta:
                eta = datetime.fromisoformat(task.eta).timestamp()
                offset = event.get("utcoffset")
                if offset is not None:
                    from celery.utils.time import adjust_timestamp
                    eta = adjust_timestamp(eta, offset)
                baseline = max(baseline, eta)
            self.wait.labels(**labels).observe(max(0.0, task.started - baseline))
        if kind == "task-succeeded":
            self.runtime.labels(**labels).observe(task.runtime)


def samples(exposition: str, prefix: str = "celery_") -> dict[tuple[str, frozenset], float]:
    """The samples of an exposition whose names start with ``prefix``, without ``_created``."""
    result = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name.startswith(prefix) and not sample.name.endswith("_created"):
                result[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return result
