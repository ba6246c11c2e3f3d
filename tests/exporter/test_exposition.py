"""/metrics bodies rendered ahead: exact while nothing changes, never older than the bound."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families

from evtools.exporter.aggregates import CeleryMetrics
from evtools.exporter.collector import CeleryCollector, HealthCollector
from evtools.exporter.config import ExporterConfig
from evtools.exporter.exposition import Exposition
from tests.exporter.oracle import samples
from tests.helpers import wait_for


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def received(number: int, when: float, hostname: str = "w@h") -> dict[str, Any]:
    return {"type": "task-received", "uuid": f"id-{number}", "name": "proj.add",
            "hostname": hostname, "timestamp": when, "local_received": when, "clock": number,
            "utcoffset": 0}


def heartbeat(when: float, hostname: str = "w@h") -> dict[str, Any]:
    return {"type": "worker-heartbeat", "hostname": hostname, "timestamp": when,
            "local_received": when, "utcoffset": 0, "freq": 2.0, "active": 0}


RECEIVED = ("celery_task_received_total",
            frozenset({"name": "proj.add", "hostname": "h", "queue_name": "celery"}.items()))


def build(metrics: CeleryMetrics, max_age: float = 2.0, extra: Any = None,
          clock: FakeClock | None = None) -> Exposition:
    celery, health = CollectorRegistry(auto_describe=False), CollectorRegistry(auto_describe=False)
    celery.register(CeleryCollector(metrics))
    if extra is not None:
        celery.register(extra)
    health.register(HealthCollector(metrics))
    return Exposition(metrics, celery, health, max_age=max_age, clock=clock or FakeClock(1000.0))


def no_timeouts(clock: Any = time.time) -> CeleryMetrics:
    return CeleryMetrics(ExporterConfig(worker_timeout=0, purge_offline_after=0), clock=clock)


def test_nothing_changed_serves_the_same_rendering_and_fresh_self_metrics() -> None:
    events_clock = FakeClock(time.time())
    metrics = no_timeouts(events_clock)
    metrics.on_event(received(1, events_clock.now))
    exposition = build(metrics)
    first = exposition.body(False).decode()
    assert exposition.renders == 1 and samples(first)[RECEIVED] == 1
    exposition.clock.now += 3600  # long past the bound, but nothing changed: still exact
    events_clock.now += 42
    second = exposition.body(False).decode()
    assert exposition.renders == 1
    assert samples(second) == samples(first)
    assert samples(second, "evtools_seconds_since_last_event")[
        ("evtools_seconds_since_last_event", frozenset())] == 42  # evtools_* stay live


def test_a_change_is_served_within_the_bound_and_never_later() -> None:
    metrics = no_timeouts()
    metrics.on_event(received(1, time.time()))
    exposition = build(metrics, max_age=2.0)
    assert samples(exposition.body(False).decode())[RECEIVED] == 1
    metrics.on_event(received(2, time.time()))
    exposition.clock.now += 1.5
    assert samples(exposition.body(False).decode())[RECEIVED] == 1  # 1.5 s old: allowed
    exposition.clock.now += 0.6
    assert samples(exposition.body(False).decode())[RECEIVED] == 2  # 2.1 s: rendered anew
    assert exposition.renders == 2


def test_the_background_refresh_renders_scraped_formats_ahead_of_scrapes() -> None:
    metrics = no_timeouts()
    metrics.on_event(received(1, time.time()))
    exposition = build(metrics, max_age=2.0)
    exposition.body(True)  # Prometheus scrapes OpenMetrics
    metrics.on_event(received(2, time.time()))
    exposition.clock.now += 0.5
    assert exposition.refresh() == 0  # changed, but younger than half the bound
    exposition.clock.now += 0.5
    assert exposition.refresh() == 1  # only the format that is scraped
    assert exposition.renders == 2
    body = exposition.body(True).decode()
    assert exposition.renders == 2  # the scrape used what the refresh rendered
    assert 'celery_task_received_total{hostname="h",name="proj.add",queue_name="celery"} 2.0' in body
    assert exposition.refresh() == 0  # nothing changed since
    metrics.on_event(received(3, time.time()))
    exposition.clock.now += exposition.keep_warm + 1  # nobody scraped for that long
    assert exposition.refresh() == 0


def test_the_background_renders_once_before_each_expected_scrape() -> None:
    metrics = no_timeouts()
    exposition = build(metrics, max_age=2.0)
    start = exposition.clock.now
    for scrape in range(3):  # Prometheus, every 15 s
        exposition.clock.now = start + 15 * scrape
        exposition.body(True)
    assert exposition.next_scrape(True) == start + 45
    renders = exposition.renders
    for tick in range(1, 28):  # events all along, ticks every half second until 44.5 s
        metrics.on_event(received(tick, time.time()))
        exposition.clock.now = start + 30 + tick / 2
        exposition.refresh()
    assert exposition.renders == renders  # no scrape was due
    exposition.clock.now = start + 44.2
    assert exposition.refresh() == 1  # due within max_age / 2
    body = exposition.body(True).decode()  # the scrape, a little early
    assert exposition.renders == renders + 1
    assert 'celery_task_received_total{hostname="h",name="proj.add",queue_name="celery"} 27.0' in body
    metrics.on_event(received(28, time.time()))
    exposition.clock.now = start + 61  # the next scrape (due at 58.4) is overdue: periodic
    assert exposition.refresh() == 1


def test_openmetrics_body_is_one_exposition_with_both_parts() -> None:
    metrics = no_timeouts()
    metrics.on_event(received(1, time.time()))
    exposition = build(metrics)
    body = exposition.body(True).decode()
    assert body.endswith("# EOF\n") and body.count("# EOF") == 1
    names = {family.name for family in openmetrics_families(body)}  # the strict parser
    assert {"celery_task_received", "celery_task_runtime", "celery_worker_up",
            "evtools_events_received", "evtools_event_lag_seconds"} <= names
    text = exposition.body(False).decode()
    assert "# EOF" not in text and "evtools_events_received_total" in text


def test_a_worker_timeout_reaches_a_rendering_kept_in_memory() -> None:
    events_clock = FakeClock(time.time())
    metrics = CeleryMetrics(ExporterConfig(worker_timeout=10, purge_offline_after=0),
                            clock=events_clock)
    metrics.on_event(heartbeat(events_clock.now))
    exposition = build(metrics, max_age=2.0)
    up = ("celery_worker_up", frozenset({"hostname": "h"}.items()))
    assert samples(exposition.body(False).decode())[up] == 1
    events_clock.now += 11  # no event: time alone takes the worker down
    exposition.clock.now += 11
    assert samples(exposition.body(False).decode())[up] == 0


def test_max_age_zero_renders_every_scrape_that_follows_a_change() -> None:
    metrics = no_timeouts()
    exposition = build(metrics, max_age=0)
    for number in range(1, 4):
        metrics.on_event(received(number, time.time()))
        assert samples(exposition.body(False).decode())[RECEIVED] == number
    exposition.body(False)
    assert exposition.renders == 3


class Gate:
    """A collector whose collection waits until the gate opens: a rendering that takes long."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.waiting = threading.Event()

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        self.waiting.set()
        self.open.wait(30)
        yield GaugeMetricFamily("celery_gate", "A slow family.", value=1)


def test_a_scrape_is_answered_while_a_rendering_is_under_way() -> None:
    gate = Gate()
    metrics = no_timeouts()
    metrics.on_event(received(1, time.time()))
    exposition = build(metrics, max_age=10.0, extra=gate)
    gate.open.set()
    exposition.body(False)
    gate.open.clear()
    gate.waiting.clear()
    metrics.on_event(received(2, time.time()))
    exposition.clock.now += 5
    refresh = threading.Thread(target=exposition.refresh)
    refresh.start()
    try:
        assert gate.waiting.wait(10)  # the background rendering is stuck in a collection
        body = exposition.body(False).decode()  # answered from memory meanwhile
        assert refresh.is_alive() and not gate.open.is_set()
        assert samples(body)[RECEIVED] == 1
    finally:
        gate.open.set()
        refresh.join(10)
    assert samples(exposition.body(False).decode())[RECEIVED] == 2
    assert exposition.renders == 2


def test_the_background_thread_keeps_a_scraped_format_rendered() -> None:
    metrics = no_timeouts()
    exposition = build(metrics, max_age=0.2, clock=time.monotonic)  # type: ignore[arg-type]
    exposition.body(False)
    exposition.start()
    try:
        metrics.on_event(received(1, time.time()))
        assert wait_for(lambda: exposition.renders >= 2, timeout=10)
        rendered = exposition.renders
        assert samples(exposition.body(False).decode())[RECEIVED] == 1
        assert exposition.renders == rendered  # the scrape rendered nothing itself
    finally:
        exposition.stop()
