"""prometheus_client collectors that read the aggregates: celery-exporter's families, and
evtools' own (``evtools_``), apart so that the first can be rendered ahead of scrapes
(:mod:`.exposition`) while the second stays live.

Only prometheus_client's public API is used: metric families yielded from ``collect()``.
Nothing is computed here that could wait on the broker: a collection reads memory.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily, Metric, Sample)

from .aggregates import LAG_BUCKETS, CeleryMetrics, Histogram, Snapshot

__all__ = ("CeleryCollector", "HealthCollector", "CreatedHistogramFamily", "FAMILY_HELP",
           "go_float")

#: Each task counter's help text, as celery-exporter words it.
FAMILY_HELP = {
    "task-sent": "Sent when a task message is published.",
    "task-received": "Sent when the worker receives a task.",
    "task-started": "Sent just before the worker executes the task.",
    "task-succeeded": "Sent if the task executed successfully.",
    "task-failed": "Sent if the execution of the task failed.",
    "task-rejected": "The task was rejected by the worker, possibly to be re-queued or moved "
                     "to a dead letter queue.",
    "task-revoked": "Sent if the task has been revoked.",
    "task-retried": "Sent if the task failed, but will be retried in the future.",
}


def go_float(value: float) -> str:
    """Format a bucket bound as Prometheus clients do (``+Inf``, ``0.005``, ``1.0``)."""
    if value == math.inf:
        return "+Inf"
    if value == -math.inf:
        return "-Inf"
    if math.isnan(value):
        return "NaN"
    text = repr(float(value))
    dot = text.find(".")
    if value > 0 and dot > 6:
        mantissa = f"{text[0]}.{text[1:dot]}{text[dot + 1:]}".rstrip("0.")
        return f"{mantissa}e+0{dot - 1}"
    return text


#: The lag histogram's ``le`` labels.
LAG_LES = tuple(go_float(bound) for bound in LAG_BUCKETS)


def _buckets(histogram: Histogram, bounds: Sequence[str]) -> list[tuple[str, float]]:
    """Cumulative bucket counts labelled by their bounds (already formatted by go_float)."""
    cumulative, rows = 0, []
    for bound, count in zip(bounds, histogram.counts, strict=False):
        cumulative += count
        rows.append((bound, cumulative))
    return rows


class CreatedHistogramFamily(HistogramMetricFamily):
    """A HistogramMetricFamily whose :meth:`add_metric` also takes ``created``.

    prometheus_client's own Histogram exposes ``<name>_created`` for each label set (after
    ``_sum``), and CounterMetricFamily takes ``created``; HistogramMetricFamily does not, so
    the sample is appended here as CounterMetricFamily appends its own: a public ``Sample``
    in the family's public ``samples``.
    """

    def __init__(self, name: str, documentation: str, labels: list[str]) -> None:
        super().__init__(name, documentation, labels=labels)
        self.label_names = tuple(labels)

    def add_metric(self, labels: Sequence[str], buckets: Sequence[tuple[str, float]],
                   sum_value: float | None, timestamp: float | None = None,
                   created: float | None = None) -> None:
        """Add one label set's buckets, count and sum, then its creation time if known."""
        super().add_metric(labels, buckets, sum_value, timestamp)
        if created is not None:
            names = dict(zip(self.label_names, labels, strict=True))
            self.samples.append(Sample(f"{self.name}_created", names, created, timestamp))


class CeleryCollector:
    """Yields celery-exporter's families from a :class:`CeleryMetrics`."""

    def __init__(self, metrics: CeleryMetrics) -> None:
        self.metrics = metrics
        config = metrics.config
        self.prefix = config.metric_prefix
        self.static_names = [name for name, _ in config.static_labels]
        self.static_values = [value for _, value in config.static_labels]
        #: The ``le`` label of each bucket, formatted once.
        self.runtime_les = [go_float(bound) for bound in config.buckets]
        self.queue_wait_les = [go_float(bound) for bound in config.queue_wait_buckets]

    def describe(self) -> list[Metric]:
        """Nothing up front: families are only known at scrape time."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Yield every family from one consistent snapshot."""
        snap = self.metrics.snapshot()
        yield from self._task_families(snap)
        yield from self._worker_families(snap)

    # -- celery-exporter's families ----------------------------------------------------------

    def _task_families(self, snap: Snapshot) -> Iterator[Metric]:
        prefix, static_names, static_values = self.prefix, self.static_names, self.static_values
        for event_type, series in snap.counters.items():
            family = event_type.replace("-", "_")
            labels = (["name", "hostname", "exception", "queue_name"] if event_type == "task-failed"
                      else ["name", "hostname", "queue_name"])
            metric = CounterMetricFamily(f"{prefix}{family}", FAMILY_HELP[event_type],
                                         labels=labels + static_names)
            created = snap.created[event_type]
            for key, value in series.items():
                metric.add_metric([*key, *static_values], value, created=created.get(key))
            yield metric
        for name, help_text, series, les in (
                ("task_runtime", "Histogram of task runtime measurements.", snap.runtime,
                 self.runtime_les),
                ("task_queue_wait_time", "Histogram of the time tasks spend waiting in the queue "
                 "before being executed, excluding deliberate ETA/countdown delay.",
                 snap.queue_wait, self.queue_wait_les)):
            metric = CreatedHistogramFamily(f"{prefix}{name}", help_text,
                                            labels=["name", "hostname", "queue_name", *static_names])
            for key, histogram in series.items():
                metric.add_metric([*key, *static_values], _buckets(histogram, les),
                                  histogram.total, created=histogram.created)
            yield metric

    def _gauge(self, name: str, help_text: str, label: str,
               values: dict[str, float]) -> GaugeMetricFamily:
        metric = GaugeMetricFamily(f"{self.prefix}{name}", help_text,
                                   labels=[label, *self.static_names])
        for key, value in values.items():
            metric.add_metric([key, *self.static_values], value)
        return metric

    def _worker_families(self, snap: Snapshot) -> Iterator[Metric]:
        yield self._gauge("worker_up", "Indicates if a worker has recently sent a heartbeat.",
                          "hostname", snap.worker_up)
        yield self._gauge("worker_tasks_active",
                          "The number of tasks the worker is currently processing",
                          "hostname", snap.worker_active)
        broker = snap.broker
        yield self._gauge("queue_length", "The number of message in broker queue.",
                          "queue_name", broker.queue_length)
        yield self._gauge("active_consumer_count",
                          "The number of active consumer in broker queue.", "queue_name",
                          broker.consumer_count)
        yield self._gauge("active_worker_count", "The number of active workers in broker queue.",
                          "queue_name", broker.worker_count)
        yield self._gauge("active_process_count",
                          "The number of active processes in broker queue.", "queue_name",
                          broker.process_count)

class HealthCollector:
    """Yields evtools' own families: events by type, drops, overflow, broker, silence, lag.

    ``source`` is the event source whose health is reported: anything with ``connected`` (a
    threading.Event), ``reconnects`` and ``receiver.dropped`` (a LiveSource), or None.
    """

    def __init__(self, metrics: CeleryMetrics, source: Any = None) -> None:
        self.metrics = metrics
        self.source = source

    def describe(self) -> list[Metric]:
        """Nothing up front: families are only known at scrape time."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Yield every family from one snapshot of the counters."""
        snap = self.metrics.health_snapshot()
        events = CounterMetricFamily("evtools_events_received", "Events received, by type.",
                                     labels=["type"])
        for event_type, count in sorted(snap.events_by_type.items()):
            events.add_metric([event_type], count)
        yield events
        dropped_counts = dict(snap.dropped)
        source = self.source
        receiver = getattr(source, "receiver", None)
        for kind, count in dict(getattr(receiver, "dropped", None) or {}).items():
            dropped_counts[kind] = dropped_counts.get(kind, 0) + count
        dropped = CounterMetricFamily("evtools_events_dropped",
                                      "Events not used (malformed, incomplete, filtered), by kind.",
                                      labels=["kind"])
        for kind, count in sorted(dropped_counts.items()):
            dropped.add_metric([kind], count)
        yield dropped
        overflow = CounterMetricFamily(
            "evtools_series_overflow",
            "Label sets sent to the overflow series because a family reached its series cap.",
            labels=["family"])
        for family, count in sorted(snap.overflow.items()):
            overflow.add_metric([family], count)
        yield overflow
        if source is not None:
            connected = getattr(source, "connected", None)
            yield GaugeMetricFamily("evtools_broker_connected",
                                    "1 while the event consumer is connected to the broker.",
                                    value=1.0 if connected is not None and connected.is_set() else 0.0)
            yield CounterMetricFamily("evtools_broker_reconnects",
                                      "Times the broker connection was lost and retried.",
                                      value=float(getattr(source, "reconnects", 0)))
        if snap.last_event_at is not None:
            yield GaugeMetricFamily("evtools_seconds_since_last_event",
                                    "Seconds since the last event arrived.",
                                    value=max(0.0, snap.taken_at - snap.last_event_at))
        if snap.broker_refreshed_at is not None:
            yield GaugeMetricFamily("evtools_broker_gauges_age_seconds",
                                    "Seconds since the queue and worker gauges were measured.",
                                    value=max(0.0, snap.taken_at - snap.broker_refreshed_at))
        lag = CreatedHistogramFamily("evtools_event_lag_seconds",
                                     "Seconds between an event's timestamp and its arrival here.",
                                     labels=[])
        lag.add_metric([], _buckets(snap.lag, LAG_LES), snap.lag.total, created=snap.lag.created)
        yield lag
