"""Queue lengths and worker counts, measured in the background so that scrapes never wait.

Every ``interval`` seconds a thread asks the workers (``stats`` and ``active_queues`` over
pidbox, as ``celery inspect`` does) which queues they consume and with how many processes,
and asks the broker how long each known queue is; the result replaces the exporter's queue
gauges in one go. A broker that is down leaves the last values in place (their age is
exported) and is retried at the next round.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from kombu import Connection

from ..transport.broker import connection_for
from ..config import Settings
from ..control import broadcast
from .aggregates import BrokerGauges, CeleryMetrics

__all__ = ("BrokerRefresher", "redis_queue_keys", "measure_queues", "inspect_workers")

logger = logging.getLogger(__name__)

#: kombu's defaults for Redis priorities: sub-queue ``<queue><sep><step>`` per non-zero step.
REDIS_PRIORITY_STEPS = (0, 3, 6, 9)
REDIS_PRIORITY_SEP = "\x06\x16"


def redis_queue_keys(queue: str, transport_options: dict[str, Any]) -> list[str]:
    """The Redis lists that hold ``queue``'s messages: itself and one per priority step."""
    steps = transport_options.get("priority_steps", REDIS_PRIORITY_STEPS)
    sep = transport_options.get("sep", REDIS_PRIORITY_SEP)
    return [queue] + [f"{queue}{sep}{step}" for step in steps if step]


def inspect_workers(connection: Connection, settings: Settings,
                    timeout: float = 1.0) -> tuple[dict[str, int], dict[str, int]]:
    """Ask every worker; return (workers per queue, pool processes per queue)."""
    processes: dict[str, int] = {}
    for reply in broadcast(connection, "stats", reply=True, timeout=timeout,
                           settings=settings) or []:
        for hostname, stats in reply.items():
            pool = stats.get("pool") if isinstance(stats, dict) else None
            procs = pool.get("processes") if isinstance(pool, dict) else None
            processes[hostname] = len(procs) if isinstance(procs, list) else 0
    workers_per_queue: dict[str, int] = {}
    processes_per_queue: dict[str, int] = {}
    for reply in broadcast(connection, "active_queues", reply=True, timeout=timeout,
                           settings=settings) or []:
        for hostname, queues in reply.items():
            for info in queues if isinstance(queues, list) else ():
                name = info.get("name") if isinstance(info, dict) else None
                if not isinstance(name, str):
                    continue
                workers_per_queue[name] = workers_per_queue.get(name, 0) + 1
                processes_per_queue[name] = (processes_per_queue.get(name, 0)
                                             + processes.get(hostname, 0))
    return workers_per_queue, processes_per_queue


def measure_queues(connection: Connection, queues: Iterable[str]
                   ) -> tuple[dict[str, float], dict[str, float]]:
    """Return (messages waiting, consumers) per queue; consumers are known on AMQP only."""
    queues = sorted(queues)
    driver = connection.transport.driver_type
    lengths: dict[str, float] = {}
    consumers: dict[str, float] = {}
    if driver == "redis":
        client = connection.default_channel.client
        options = dict(connection.transport_options)
        pipe = client.pipeline()
        keys = {queue: redis_queue_keys(queue, options) for queue in queues}
        for queue in queues:
            for key in keys[queue]:
                pipe.llen(key)
        counts = iter(pipe.execute())
        for queue in queues:
            lengths[queue] = float(sum(next(counts) for _ in keys[queue]))
    elif driver == "amqp":
        for queue in queues:
            channel = connection.channel()
            try:
                _, messages, consumer_count = channel.queue_declare(queue=queue, passive=True)
                lengths[queue], consumers[queue] = float(messages), float(consumer_count)
            except connection.channel_errors:  # NOT_FOUND: no such queue (yet)
                lengths[queue], consumers[queue] = 0.0, 0.0
            finally:
                try:
                    channel.close()
                except Exception:  # the server closed it already after NOT_FOUND
                    pass
    return lengths, consumers


class BrokerRefresher:
    """A thread that refreshes the exporter's queue and worker gauges every ``interval`` s."""

    def __init__(self, metrics: CeleryMetrics, settings: Settings, interval: float = 10.0,
                 inspect_timeout: float = 1.0) -> None:
        self.metrics = metrics
        self.settings = settings
        self.interval = interval
        self.inspect_timeout = inspect_timeout
        #: Queues seen consumed by a worker (or given with --queues): kept when workers vanish.
        self.queues: set[str] = set(metrics.config.queues)
        #: Rounds that failed (broker down, ...).
        self.errors = 0
        self.rounds = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connection: Connection | None = None

    def refresh(self) -> BrokerGauges:
        """Measure once and hand the result to the metrics; return it."""
        if self._connection is None:
            self._connection = connection_for(self.settings, connect_timeout=3)
        connection = self._connection
        connection.ensure_connection(max_retries=1, interval_start=0, timeout=3)
        workers, processes = inspect_workers(connection, self.settings, self.inspect_timeout)
        self.queues.update(workers)
        lengths, consumers = measure_queues(connection, self.queues)
        gauges = BrokerGauges(
            queue_length=lengths, consumer_count=consumers,
            worker_count={q: float(workers.get(q, 0)) for q in self.queues},
            process_count={q: float(processes.get(q, 0)) for q in self.queues},
            refreshed_at=time.time())
        self.metrics.set_broker_gauges(gauges)
        self.rounds += 1
        return gauges

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception as exc:  # the broker is down or replied nonsense: keep going
                self.errors += 1
                logger.warning("could not refresh queue gauges: %s", exc or type(exc).__name__)
                self._drop_connection()
            self._stop.wait(self.interval)

    def _drop_connection(self) -> None:
        if self._connection is not None:
            try:
                self._connection.release()
            except Exception:
                pass
            self._connection = None

    def start(self) -> None:
        """Start refreshing in a daemon thread."""
        thread = threading.Thread(target=self._loop, name="evtools-broker-gauges", daemon=True)
        thread.start()
        self._thread = thread  # only once started: stop() may come from another thread any time

    def stop(self) -> None:
        """Stop the thread and release its connection."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.interval + 5)
        self._drop_connection()
