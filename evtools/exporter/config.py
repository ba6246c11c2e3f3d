"""What an exporter is told: celery-exporter's settings plus evtools' own controls."""

from __future__ import annotations

import dataclasses
import math
import re

from ..errors import ConfigurationError

__all__ = ("ExporterConfig", "DEFAULT_BUCKETS", "DEFAULT_QUEUE_WAIT_BUCKETS", "TASK_EVENT_TYPES",
           "with_infinity")

INF = math.inf

#: prometheus_client's default histogram buckets (celery_task_runtime's default).
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
                   10.0, INF)

#: celery-exporter's queue wait buckets: little sub-second detail, up to half an hour.
DEFAULT_QUEUE_WAIT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
                              300.0, 600.0, 1800.0, INF)

#: The task event types celery-exporter counts, in its family order.
TASK_EVENT_TYPES = ("task-sent", "task-received", "task-started", "task-succeeded",
                    "task-failed", "task-rejected", "task-revoked", "task-retried")


_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$|^$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def with_infinity(bounds: tuple[float, ...] | list[float]) -> tuple[float, ...]:
    """Return sorted bucket bounds ending with +Inf, as prometheus_client completes them."""
    values = tuple(sorted(float(b) for b in bounds))
    return values if values and values[-1] == INF else (*values, INF)


@dataclasses.dataclass(frozen=True, slots=True)
class ExporterConfig:
    """Every setting of the exporter's aggregates (the HTTP and broker parts live elsewhere)."""

    buckets: tuple[float, ...] = DEFAULT_BUCKETS
    queue_wait_buckets: tuple[float, ...] = DEFAULT_QUEUE_WAIT_BUCKETS
    #: Seconds without a heartbeat after which a worker is down (0: never).
    worker_timeout: float = 300.0
    #: Seconds without a heartbeat after which a worker's series are removed (0: never).
    purge_offline_after: float = 600.0
    generic_hostname_task_sent: bool = False
    generic_hostname_worker_task: bool = False
    default_queue_name: str = "celery"
    metric_prefix: str = "celery_"
    static_labels: tuple[tuple[str, str], ...] = ()
    #: Queues whose gauges are exported even before a worker is seen consuming them.
    queues: tuple[str, ...] = ()
    #: Only tasks whose name matches one of these globs are counted (empty: every task).
    task_allow: tuple[str, ...] = ()
    #: Tasks whose name matches one of these globs are never counted.
    task_deny: tuple[str, ...] = ()
    #: ``(pattern, replacement)`` applied to every hostname label with ``re.sub``.
    hostname_rewrite: tuple[str, str] | None = None
    #: At most this many series per family; new label sets beyond go to one overflow series.
    max_series_per_family: int = 0
    #: Event type globs this exporter counts (empty: all); splits a stream across exporters.
    types: tuple[str, ...] = ()
    #: Keep at most this many tasks in memory (what a task-started needs of its task-sent).
    max_tasks_in_memory: int = 10000

    def __post_init__(self) -> None:
        object.__setattr__(self, "buckets", with_infinity(self.buckets))
        object.__setattr__(self, "queue_wait_buckets", with_infinity(self.queue_wait_buckets))
        if self.hostname_rewrite is not None:
            try:
                re.compile(self.hostname_rewrite[0])
            except re.error as exc:
                raise ConfigurationError(f"--hostname-rewrite {self.hostname_rewrite[0]!r}: "
                                         f"{exc}") from None
        if not _METRIC_NAME.match(self.metric_prefix):
            raise ConfigurationError(f"--metric-prefix {self.metric_prefix!r} is not a valid "
                                     "start of a metric name")
        taken = {"name", "hostname", "queue_name", "exception", "le"}
        for name, _ in self.static_labels:
            if not _LABEL_NAME.match(name) or name in taken or name.startswith("__"):
                raise ConfigurationError(f"--static-label {name!r}: not a label name evtools "
                                         "can add (reserved or invalid)")
            taken.add(name)
