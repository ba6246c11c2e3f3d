"""The exporter's aggregates and exposition against an independent model of celery-exporter."""

from __future__ import annotations

import copy
import json
import random
import time
import uuid as uuidlib
from datetime import datetime, timezone
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

from evtools.exporter.aggregates import OVERFLOW, CeleryMetrics, exception_class_name, hostname_label
from evtools.exporter.collector import CeleryCollector, HealthCollector, go_float
from evtools.exporter.config import ExporterConfig
from tests.celery_compare import celery_pair, corpus_messages, evtools_pair
from tests.exporter.oracle import OracleExporter, samples

NO_TIMEOUTS = dict(worker_timeout=0, purge_offline_after=0)


def exposition(metrics: CeleryMetrics, source: Any = None) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CeleryCollector(metrics))
    registry.register(HealthCollector(metrics, source))
    return generate_latest(registry).decode()


def feed_corpus(metrics: CeleryMetrics, oracle: OracleExporter | None = None) -> None:
    """Each corpus message through evtools' receiver into metrics, and Celery's into the oracle."""
    our_receiver, _ = evtools_pair()
    celery_receiver, _ = celery_pair()
    for record in corpus_messages():
        body = json.loads(record["body_raw"])
        for event in body if isinstance(body, list) else [body]:
            _, ours = our_receiver.event_from_message(copy.deepcopy(event),
                                                      now=lambda: record["recv_time"])  # noqa: B023
            metrics.on_event(ours)
            if oracle is not None:
                _, theirs = celery_receiver.event_from_message(copy.deepcopy(event),
                                                               now=lambda: record["recv_time"])  # noqa: B023
                oracle.on_event(theirs)


def generated_events(seed: int, tasks: int = 300) -> list[dict[str, Any]]:
    """Task lives and heartbeats as receivers hand them over, in a seeded random order."""
    rng = random.Random(seed)
    now = time.time() - 60
    workers = ["w1@host-a", "w2@host-b", "celery@host-c"]
    events: list[dict[str, Any]] = []
    clock = 0

    def event(kind: str, hostname: str, when: float, **fields: Any) -> dict[str, Any]:
        nonlocal clock
        clock += 1
        return {"type": kind, "hostname": hostname, "timestamp": when, "local_received": when + 0.01,
                "clock": clock, "utcoffset": 0, "pid": 1, **fields}

    for host in workers:
        events.append(event("worker-online", host, now, freq=2.0, active=0, processed=0))
    for number in range(tasks):
        task_id = str(uuidlib.UUID(int=rng.getrandbits(128)))
        name = rng.choice(["proj.add", "proj.mail", "proj.report", "proj.slow"])
        worker = rng.choice(workers)
        when = now + number * 0.1
        if rng.random() < 0.85:
            eta = None
            if rng.random() < 0.2:
                eta = datetime.fromtimestamp(when + rng.choice([-5, 0.3, 2]), timezone.utc).isoformat()
            events.append(event("task-sent", rng.choice(["gen1@web-1", "gen2@web-2"]), when,
                                uuid=task_id, name=name, queue=rng.choice(["celery", "mail"]),
                                eta=eta, retries=0))
        received = when + rng.uniform(0, 3)
        events.append(event("task-received", worker, received, uuid=task_id, name=name, retries=0))
        started = received + rng.uniform(0, 2)
        events.append(event("task-started", worker, started, uuid=task_id))
        ending = rng.choice(["task-succeeded"] * 5 + ["task-failed", "task-retried",
                                                      "task-revoked", "task-rejected"])
        fields: dict[str, Any] = {"uuid": task_id}
        if ending == "task-succeeded":
            fields["runtime"] = rng.uniform(0, 12)
        elif ending in ("task-failed", "task-retried"):
            fields["exception"] = rng.choice(["ValueError('bad')", "KeyError('k')",
                                              "not a repr", "Terminated(9)"])
        events.append(event(ending, worker, started + 1, **fields))
        if rng.random() < 0.3:
            events.append(event("worker-heartbeat", worker, started, freq=2.0,
                                active=rng.randint(0, 4), processed=number))
    events.append(event("worker-offline", workers[2], now + tasks))
    # a mildly shuffled arrival order: events of a task may overtake each other
    for index in range(len(events) - 1):
        if rng.random() < 0.15:
            events[index], events[index + 1] = events[index + 1], events[index]
    return events


def test_corpus_gives_celery_exporters_samples_exactly() -> None:
    metrics, oracle = CeleryMetrics(ExporterConfig(**NO_TIMEOUTS)), OracleExporter()
    feed_corpus(metrics, oracle)
    ours = samples(exposition(metrics))
    theirs = samples(generate_latest(oracle.registry).decode())
    assert ours == theirs
    failed = {dict(labels)["exception"]: value for (name, labels), value in ours.items()
              if name == "celery_task_failed_total" and value}
    assert failed["ValueError"] == 1 and failed["NotRegistered"] == 1
    assert ours[("celery_task_sent_total", frozenset(
        {"name": "tasks.slow", "hostname": "vm", "queue_name": "parked"}.items()))] == 1


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("generic", [False, True])
def test_generated_events_give_celery_exporters_samples(seed: int, generic: bool) -> None:
    metrics = CeleryMetrics(ExporterConfig(**NO_TIMEOUTS, generic_hostname_task_sent=generic,
                                           generic_hostname_worker_task=generic))
    oracle = OracleExporter(generic_sent=generic, generic_worker=generic)
    for event in generated_events(seed):
        metrics.on_event(copy.deepcopy(event))
        oracle.on_event(copy.deepcopy(event))
    ours = samples(exposition(metrics))
    theirs = samples(generate_latest(oracle.registry).decode())
    assert ours == theirs
    names = {name for name, _ in ours}
    assert {"celery_task_runtime_bucket", "celery_task_queue_wait_time_bucket",
            "celery_worker_up", "celery_worker_tasks_active"} <= names
    hostnames = {dict(labels)["hostname"] for name, labels in ours if name.startswith("celery_task_")}
    assert (hostnames == {"generic"}) if generic else ("web-1" in hostnames and "host-c" in hostnames)
    # celery_worker_up keeps each worker's own hostname whatever the flags
    assert {dict(labels)["hostname"] for name, labels in ours if name == "celery_worker_up"} \
        == {"host-a", "host-b", "host-c"}


def layout(registry: CollectorRegistry, openmetrics: bool) -> dict[tuple[str, frozenset], list[str]]:
    """Each celery_ family's label sets (``le`` aside), with their sample names in exposition order."""
    if openmetrics:
        text = generate_openmetrics(registry).decode()
        families = openmetrics_families(text)  # the strict OpenMetrics parser: ordering is checked
    else:
        families = text_string_to_metric_families(generate_latest(registry).decode())
    result: dict[tuple[str, frozenset], list[str]] = {}
    for family in families:
        for sample in family.samples:
            if sample.name.startswith("celery_"):
                labels = frozenset((k, v) for k, v in sample.labels.items() if k != "le")
                result.setdefault((family.name, labels), []).append(sample.name)
    return result


@pytest.mark.parametrize("openmetrics", [False, True], ids=["text", "openmetrics"])
def test_created_samples_are_where_prometheus_clients_own_metrics_put_them(openmetrics: bool) -> None:
    started = time.time()
    metrics, oracle = CeleryMetrics(ExporterConfig(**NO_TIMEOUTS)), OracleExporter()
    for event in generated_events(5):
        metrics.on_event(copy.deepcopy(event))
        oracle.on_event(copy.deepcopy(event))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CeleryCollector(metrics))
    ours, theirs = layout(registry, openmetrics), layout(oracle.registry, openmetrics)
    assert ours == theirs  # every sample name, _created included, in the same order per label set
    for histogram in ("celery_task_runtime", "celery_task_queue_wait_time"):
        with_created = [names for (family, _), names in ours.items()
                        if family.startswith(histogram) and f"{histogram}_created" in names]
        assert len(with_created) > 3
        if openmetrics:  # one family: buckets, count, sum, then created
            assert all(names[-3:] == [f"{histogram}_count", f"{histogram}_sum",
                                      f"{histogram}_created"] for names in with_created)
    created = [value for (name, _), value in samples_with_created(registry).items()
               if name in ("celery_task_runtime_created", "celery_task_queue_wait_time_created")]
    assert created and all(started <= value <= time.time() for value in created)


def samples_with_created(registry: CollectorRegistry) -> dict[tuple[str, frozenset], float]:
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(generate_latest(registry).decode())
            for sample in family.samples}


def test_label_rules() -> None:
    assert hostname_label("w1@host.example") == "host.example"
    assert hostname_label("just-a-host") == "just-a-host"
    assert exception_class_name("ValueError('x')") == "ValueError"
    assert exception_class_name("oops") == "UnknownException"
    assert exception_class_name(None) == "UnknownException"
    assert [go_float(b) for b in (0.005, 1, 1800, float("inf"), 1e7)] == \
        ["0.005", "1.0", "1800.0", "+Inf", "1e+07"]  # as Go (and prometheus_client) write them


def test_families_help_and_types_match_celery_exporter() -> None:
    text = exposition(CeleryMetrics())
    for family in ("sent", "received", "started", "succeeded", "failed", "rejected", "revoked",
                   "retried"):
        assert f"# TYPE celery_task_{family}_total counter" in text
    for gauge in ("worker_up", "worker_tasks_active", "queue_length", "active_consumer_count",
                  "active_worker_count", "active_process_count"):
        assert f"# TYPE celery_{gauge} gauge" in text
    assert "# TYPE celery_task_runtime histogram" in text
    assert "# TYPE celery_task_queue_wait_time histogram" in text


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_silent_worker_goes_down_then_its_series_are_purged() -> None:
    start = time.time()
    clock = FakeClock(start)
    metrics = CeleryMetrics(ExporterConfig(worker_timeout=300, purge_offline_after=600), clock=clock)
    for event in generated_events(7, tasks=20):
        metrics.on_event(event)
    before = samples(exposition(metrics))
    assert before[("celery_worker_up", frozenset({"hostname": "host-a"}.items()))] == 1
    clock.now = start + 400  # past the timeout, before the purge
    down = samples(exposition(metrics))
    assert down[("celery_worker_up", frozenset({"hostname": "host-a"}.items()))] == 0
    assert any(dict(labels).get("hostname") == "host-a" for name, labels in down
               if name == "celery_task_received_total")
    clock.now = start + 700
    purged = samples(exposition(metrics))
    assert not any(dict(labels).get("hostname") in ("host-a", "host-b", "host-c")
                   for _, labels in purged)
    assert any(dict(labels).get("hostname") == "web-1" for _, labels in purged)  # clients stay


def test_a_purged_workers_label_sets_are_zero_filled_again_when_it_comes_back() -> None:
    clock = FakeClock(time.time())
    metrics = CeleryMetrics(ExporterConfig(worker_timeout=10, purge_offline_after=20), clock=clock)
    heartbeat = {"type": "worker-heartbeat", "hostname": "w@h", "timestamp": clock.now,
                 "local_received": clock.now, "utcoffset": 0, "freq": 2.0, "active": 0}
    received = {"type": "task-received", "uuid": "id-1", "name": "proj.add", "hostname": "w@h",
                "timestamp": clock.now, "local_received": clock.now, "utcoffset": 0, "clock": 1}
    metrics.on_event(dict(heartbeat))
    metrics.on_event(dict(received))
    metrics.on_event(dict(received, uuid="id-2", clock=2))
    labels = frozenset({"name": "proj.add", "hostname": "h", "queue_name": "celery"}.items())
    assert series_of(exposition(metrics), "celery_task_received_total")[labels] == 2
    clock.now += 30
    assert not series_of(exposition(metrics), "celery_task_received_total")  # purged
    metrics.on_event(dict(heartbeat, timestamp=clock.now, local_received=clock.now))
    metrics.on_event(dict(received, uuid="id-3", clock=3, timestamp=clock.now, local_received=clock.now))
    text = exposition(metrics)
    assert series_of(text, "celery_task_received_total") == {labels: 1}
    for family in ("started", "succeeded", "rejected", "revoked", "retried"):
        assert series_of(text, f"celery_task_{family}_total") == {labels: 0}
    assert series_of(text, "celery_task_failed_total") == {labels | {("exception", "")}: 0}
    assert not series_of(text, "celery_task_sent_total")


def test_offline_sets_worker_down_and_never_recreates_a_purged_worker() -> None:
    clock = FakeClock(time.time())
    metrics = CeleryMetrics(ExporterConfig(worker_timeout=10, purge_offline_after=20), clock=clock)
    online = {"type": "worker-online", "hostname": "w@h", "timestamp": clock.now,
              "local_received": clock.now, "utcoffset": 0}
    metrics.on_event(dict(online))
    metrics.on_event(dict(online, type="worker-offline"))
    assert samples(exposition(metrics))[("celery_worker_up", frozenset({"hostname": "h"}.items()))] == 0
    clock.now += 30
    assert ("celery_worker_up", frozenset({"hostname": "h"}.items())) not in samples(exposition(metrics))
    metrics.on_event(dict(online, type="worker-offline"))
    assert ("celery_worker_up", frozenset({"hostname": "h"}.items())) not in samples(exposition(metrics))


def test_static_labels_and_metric_prefix_reach_every_celery_family() -> None:
    metrics = CeleryMetrics(ExporterConfig(**NO_TIMEOUTS, metric_prefix="ce_",
                                           static_labels=(("cluster", "eu"),)))
    for event in generated_events(3, tasks=10):
        metrics.on_event(event)
    ours = samples(exposition(metrics), prefix="ce_")
    assert ours and all(dict(labels).get("cluster") == "eu" for _, labels in ours)
    assert not samples(exposition(metrics), prefix="celery_")


# -- cardinality controls ------------------------------------------------------------------

def series_of(text: str, name: str) -> dict[frozenset, float]:
    return {labels: value for (sample, labels), value in samples(text, prefix="").items()
            if sample == name}


def test_task_allow_and_deny_globs_keep_other_tasks_out_and_count_them() -> None:
    metrics = CeleryMetrics(ExporterConfig(**NO_TIMEOUTS, task_allow=("proj.*",),
                                           task_deny=("proj.slow",)))
    for event in generated_events(4, tasks=60):
        metrics.on_event(event)
    text = exposition(metrics)
    names = {dict(labels)["name"] for labels in series_of(text, "celery_task_received_total")}
    assert names == {"proj.add", "proj.mail", "proj.report"}
    assert series_of(text, "evtools_events_dropped_total")[
        frozenset({"kind": "task-name-filtered"}.items())] > 0


def test_hostname_rewrite_folds_hostnames() -> None:
    metrics = CeleryMetrics(ExporterConfig(**NO_TIMEOUTS, hostname_rewrite=(r"^host-.*$", "pod")))
    for event in generated_events(5, tasks=30):
        metrics.on_event(event)
    text = exposition(metrics)
    assert {dict(labels)["hostname"] for labels in series_of(text, "celery_worker_up")} == {"pod"}
    # workers fold into one; clients (zero-filled by task-sent) do not match the pattern
    assert {dict(labels)["hostname"] for labels in series_of(text, "celery_task_started_total")} \
        == {"pod", "web-1", "web-2"}


def distinct_name_events(count: int) -> list[dict[str, Any]]:
    now = time.time()
    return [{"type": "task-received", "uuid": f"id-{n}", "name": f"proj.t{n}", "hostname": "w@h",
             "timestamp": now, "local_received": now, "clock": n + 1, "utcoffset": 0}
            for n in range(count)]


def test_series_cap_sends_new_label_sets_to_one_overflow_series_and_counts_it() -> None:
    metrics = CeleryMetrics(ExporterConfig(**NO_TIMEOUTS, max_series_per_family=50))
    for event in distinct_name_events(200):
        metrics.on_event(event)
    text = exposition(metrics)
    received = series_of(text, "celery_task_received_total")
    assert len(received) == 51
    overflow_key = frozenset({"name": OVERFLOW, "hostname": OVERFLOW, "queue_name": OVERFLOW}.items())
    assert received[overflow_key] == 150
    assert sum(received.values()) == 200  # nothing is lost, only folded
    overflow = series_of(text, "evtools_series_overflow_total")
    assert overflow[frozenset({"family": "task-received"}.items())] == 150
    # task-sent is never zero-filled, so no task-sent label set went anywhere
    assert frozenset({"family": "task-sent"}.items()) not in overflow


# -- splitting a stream across exporters ---------------------------------------------------

@pytest.mark.parametrize("split", [(("task-sent", "task-received", "worker-*"),
                                    ("task-started", "task-succeeded", "task-failed",
                                     "task-retried", "task-revoked", "task-rejected")),
                                   (("task-s*",), ("task-[!s]*", "worker-*"))])
def test_two_exporters_split_by_type_sum_to_one_exporters_numbers(split: tuple) -> None:
    whole = CeleryMetrics(ExporterConfig(**NO_TIMEOUTS))
    parts = [CeleryMetrics(ExporterConfig(**NO_TIMEOUTS, types=types)) for types in split]
    for event in generated_events(11):
        for metrics in (whole, *parts):
            metrics.on_event(copy.deepcopy(event))
    summed: dict = {}
    for metrics in parts:
        for key, value in samples(exposition(metrics)).items():
            summed[key] = summed.get(key, 0) + value
    assert summed == samples(exposition(whole))
    assert all(samples(exposition(p)) != samples(exposition(whole)) for p in parts)
