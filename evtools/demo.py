"""A simulated Celery cluster publishing real events, so evtools can be seen working anywhere.

Several workers run a mix of tasks (orders that spawn child tasks, payments that fail and
retry, long reports that get revoked, scheduled reindexes), send heartbeats, and now and then
leave and come back. Events are published with :class:`~evtools.dispatcher.EventDispatcher`
exactly as Celery workers publish them: task events batched on ``task.multi``.
"""

from __future__ import annotations

import heapq
import itertools
import os
import random
import time
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kombu.clocks import LamportClock

from .transport import broker, fsbroker
from .config import Settings
from .dispatcher import EventDispatcher

__all__ = ("DemoCluster", "TASK_KINDS")


@dataclass(frozen=True, slots=True)
class TaskKind:
    """A kind of task the demo runs: how long it takes and how it tends to end."""

    name: str
    weight: float
    runtime: tuple[float, float]
    fail: float = 0.0
    retry: float = 0.0
    revoke: float = 0.0
    children: tuple[str, ...] = ()
    countdown: float = 0.0


TASK_KINDS = (
    TaskKind("shop.orders.create", 3, (0.2, 1.0), fail=0.03,
             children=("shop.email.send_confirmation", "shop.invoices.render")),
    TaskKind("shop.email.send_confirmation", 0, (0.1, 0.6), retry=0.1),
    TaskKind("shop.invoices.render", 0, (0.5, 2.0)),
    TaskKind("shop.images.thumbnail", 3, (0.3, 2.5), fail=0.02),
    TaskKind("payments.charge", 2, (0.2, 1.5), fail=0.15, retry=0.2),
    TaskKind("analytics.track", 5, (0.01, 0.1)),
    TaskKind("reports.daily.build", 0.4, (5.0, 15.0), revoke=0.3),
    TaskKind("search.reindex", 0.6, (1.0, 4.0), revoke=0.2, countdown=3.0),
)
KINDS_BY_NAME = {kind.name: kind for kind in TASK_KINDS}

EXCEPTIONS = {
    "payments.charge": "CardDeclined('insufficient funds')",
    "shop.orders.create": "IntegrityError('duplicate key value violates unique constraint')",
    "shop.images.thumbnail": "OSError(28, 'No space left on device')",
    "shop.email.send_confirmation": "SMTPServerDisconnected('Connection unexpectedly closed')",
}


def _traceback(name: str, exception: str) -> str:
    module = name.rsplit(".", 1)[0].replace(".", "/")
    return ("Traceback (most recent call last):\n"
            '  File "/app/celery/app/trace.py", line 453, in trace_task\n'
            "    R = retval = fun(*args, **kwargs)\n"
            f'  File "/app/{module}.py", line 42, in {name.rsplit(".", 1)[1]}\n'
            "    raise " + exception + "\n" + exception.replace("(", ": ", 1).rstrip(")"))


@dataclass(slots=True)
class SimWorker:
    """One simulated worker: its dispatcher and what it is doing."""

    hostname: str
    pid: int
    dispatcher: EventDispatcher
    online: bool = False
    active: set[str] = field(default_factory=set)
    processed: int = 0


class DemoCluster:
    """Publish the events of a simulated cluster to ``settings.broker_url`` until stopped."""

    def __init__(self, settings: Settings, rate: float = 4.0, workers: int = 4,
                 seed: int | None = None, heartbeat: float = 2.0) -> None:
        self.settings = settings
        self.rate = rate
        self.random = random.Random(seed)
        self.heartbeat = heartbeat
        self.connection = broker.connect(settings)
        self.clock = LamportClock()  # workers keep their clocks in step, as Celery's do
        host = "demo"
        self.workers = [
            SimWorker(f"celery@worker{n}.{host}", 4000 + n,
                      EventDispatcher(self.connection, hostname=f"celery@worker{n}.{host}",
                                      clock=self.clock, buffer_group={"task"}, buffer_limit=8,
                                      settings=settings))
            for n in range(1, workers + 1)]
        for worker in self.workers:
            worker.dispatcher.pid = worker.pid
        self.client = EventDispatcher(self.connection, hostname=f"gen{os.getpid()}@web.{host}",
                                      settings=settings)
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._stopped = False
        self.published_tasks = 0

    # -- scheduling ------------------------------------------------------------------------

    def _at(self, delay: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._queue, (time.monotonic() + delay, next(self._order), action))

    def stop(self) -> None:
        """End :meth:`run` at its next turn."""
        self._stopped = True

    def run(self, duration: float | None = None, status: Callable[[str], None] | None = None) -> None:
        """Publish until :meth:`stop` or ``duration`` seconds; workers go offline at the end."""
        deadline = None if not duration else time.monotonic() + duration
        for index, worker in enumerate(self.workers):
            self._at(0.2 * index, lambda w=worker: self._online(w))
        self._at(1.0, self._next_task)
        self._at(self.heartbeat, self._heartbeats)
        self._at(45.0, self._churn)
        self._at(5.0, self._sweep)
        try:
            while not self._stopped and (deadline is None or time.monotonic() < deadline):
                now = time.monotonic()
                while self._queue and self._queue[0][0] <= now:
                    _, _, action = heapq.heappop(self._queue)
                    action()
                for worker in self.workers:
                    worker.dispatcher.flush()
                wait = (self._queue[0][0] - time.monotonic()) if self._queue else 0.1
                time.sleep(min(max(wait, 0.0), 0.1))
        finally:
            for worker in self.workers:
                if worker.online:
                    self._offline(worker)
                worker.dispatcher.flush()
                worker.dispatcher.close()
            self.client.close()
            self.connection.release()

    # -- workers ---------------------------------------------------------------------------

    def _worker_fields(self, worker: SimWorker) -> dict[str, Any]:
        load = round(self.random.uniform(0.1, 2.5), 2)
        return dict(freq=self.heartbeat, active=len(worker.active), processed=worker.processed,
                    loadavg=[load, round(load * 0.8, 2), round(load * 0.6, 2)],
                    sw_ident="evtools-demo", sw_ver="0.1.0", sw_sys="Linux")

    def _online(self, worker: SimWorker) -> None:
        worker.online = True
        worker.dispatcher.send("worker-online", **self._worker_fields(worker))

    def _offline(self, worker: SimWorker) -> None:
        worker.dispatcher.flush()
        worker.dispatcher.send("worker-offline", **self._worker_fields(worker))
        worker.online = False

    def _heartbeats(self) -> None:
        for worker in self.workers:
            if worker.online:
                worker.dispatcher.send("worker-heartbeat", **self._worker_fields(worker))
        self._at(self.heartbeat, self._heartbeats)

    def _churn(self) -> None:
        """One worker leaves for a while (warm shutdown), then comes back."""
        candidates = [w for w in self.workers if w.online and not w.active]
        if len(candidates) > 1:
            worker = self.random.choice(candidates)
            self._offline(worker)
            self._at(self.random.uniform(15, 30), lambda: self._online(worker))
        self._at(self.random.uniform(40, 80), self._churn)

    def _sweep(self) -> None:
        options = self.connection.transport_options
        if self.connection.transport.driver_type == "filesystem" and "control_folder" in options:
            fsbroker.sweep(Path(options["control_folder"]).parent,
                           ttl=self.settings.event_queue_ttl or 5.0,
                           expires=self.settings.event_queue_expires or 60.0)
        self._at(5.0, self._sweep)

    # -- tasks -----------------------------------------------------------------------------

    def _next_task(self) -> None:
        kinds = [k for k in TASK_KINDS if k.weight]
        kind = self.random.choices(kinds, weights=[k.weight for k in kinds])[0]
        self._send_task(kind, parent=None)
        self._at(self.random.expovariate(self.rate), self._next_task)

    def _arguments(self, kind: TaskKind) -> tuple[str, str]:
        n = self.random.randint(1, 99999)
        if kind.name.startswith("shop.orders"):
            return f"({n},)", f"{{'items': {self.random.randint(1, 9)}, 'currency': 'EUR'}}"
        if kind.name.startswith("payments"):
            return f"('order-{n}', {self.random.randint(5, 900)}.00)", "{}"
        if kind.name.startswith("shop.images"):
            return f"('s3://media/uploads/{n}.jpg',)", "{'size': (256, 256)}"
        return f"({n},)", "{}"

    def _send_task(self, kind: TaskKind, parent: tuple[str, str] | None,
                   task_id: str | None = None, retries: int = 0, sender: EventDispatcher | None = None) -> None:
        task_id = task_id or str(uuidlib.uuid4())
        root_id = parent[1] if parent else task_id
        args, kwargs = self._arguments(kind)
        eta = None
        if kind.countdown:
            eta = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() + kind.countdown))
        fields = dict(uuid=task_id, root_id=root_id, parent_id=parent[0] if parent else None,
                      name=kind.name, args=args, kwargs=kwargs, retries=retries, eta=eta,
                      expires=None)
        (sender or self.client).send("task-sent", queue="celery", exchange="", routing_key="celery",
                                     **fields)
        self.published_tasks += 1
        online = [w for w in self.workers if w.online]
        if not online:
            return
        worker = self.random.choice(online)
        self._at(self.random.uniform(0.01, 0.2), lambda: self._receive(worker, kind, fields))

    def _receive(self, worker: SimWorker, kind: TaskKind, fields: dict[str, Any]) -> None:
        if not worker.online:
            return
        worker.dispatcher.send("task-received", **fields)
        task_id = fields["uuid"]
        if kind.revoke and self.random.random() < kind.revoke / 2 and kind.countdown:
            self._at(kind.countdown / 2, lambda: self._revoke(worker, task_id, running=False))
            return
        delay = kind.countdown + self.random.uniform(0.0, 0.3)
        self._at(delay, lambda: self._start(worker, kind, fields))

    def _start(self, worker: SimWorker, kind: TaskKind, fields: dict[str, Any]) -> None:
        task_id = fields["uuid"]
        worker.active.add(task_id)
        worker.dispatcher.send("task-started", uuid=task_id)
        runtime = self.random.uniform(*kind.runtime)
        if kind.revoke and self.random.random() < kind.revoke:
            self._at(runtime / 3, lambda: self._revoke(worker, task_id, running=True))
        else:
            self._at(runtime, lambda: self._finish(worker, kind, fields, runtime))

    def _revoke(self, worker: SimWorker, task_id: str, running: bool) -> None:
        if running and task_id not in worker.active:
            return
        worker.active.discard(task_id)
        worker.dispatcher.send("task-revoked", uuid=task_id, terminated=running,
                               signum=15 if running else None, expired=False)

    def _finish(self, worker: SimWorker, kind: TaskKind, fields: dict[str, Any],
                runtime: float) -> None:
        task_id = fields["uuid"]
        if task_id not in worker.active:
            return  # revoked meanwhile
        worker.active.discard(task_id)
        worker.processed += 1
        roll = self.random.random()
        if roll < kind.retry and fields["retries"] < 3:
            exception = EXCEPTIONS.get(kind.name, "TimeoutError('upstream timed out')")
            worker.dispatcher.send("task-retried", uuid=task_id, exception=exception,
                                   traceback=_traceback(kind.name, exception))
            child = EventDispatcher(self.connection, hostname=f"gen{worker.pid + 100}@{worker.hostname.split('@')[1]}",
                                    settings=self.settings)
            retry_fields = dict(fields, retries=fields["retries"] + 1)
            self._at(1.0, lambda: self._resend(kind, retry_fields, child))
        elif roll < kind.retry + kind.fail:
            exception = EXCEPTIONS.get(kind.name, "RuntimeError('unexpected state')")
            worker.dispatcher.send("task-failed", uuid=task_id, exception=exception,
                                   traceback=_traceback(kind.name, exception))
        else:
            worker.dispatcher.send("task-succeeded", uuid=task_id, result=self._result(kind),
                                   runtime=round(runtime, 6))
            for child_name in kind.children:
                child = KINDS_BY_NAME[child_name]
                self._at(0.05, lambda c=child: self._send_task(
                    c, parent=(task_id, fields["root_id"]),
                    sender=self.client))

    def _resend(self, kind: TaskKind, fields: dict[str, Any], sender: EventDispatcher) -> None:
        self._send_task(kind, parent=(fields["uuid"], fields["root_id"]), task_id=fields["uuid"],
                        retries=fields["retries"], sender=sender)
        sender.close()

    def _result(self, kind: TaskKind) -> str:
        if kind.name.startswith("shop.images"):
            return "'s3://media/thumbs/%d.jpg'" % self.random.randint(1, 99999)
        if kind.name.startswith("payments"):
            return "{'status': 'captured'}"
        if kind.name.startswith("reports"):
            return "'reports/daily.pdf'"
        return "None" if kind.name.startswith("analytics") else "True"
