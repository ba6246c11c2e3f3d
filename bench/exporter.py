"""``make bench`` (exporter part): ingest rate, scrape time and memory of ``evtools exporter``.

    python -m bench.exporter            # writes bench/EXPORTER.md
    BENCH_QUICK=1 python -m bench.exporter

In-process and broker-free, so the figures are the exporter's own cost:

* ingest: events/s through the receiver alone (check + prepare, as for every view), through
  the receiver plus evtools' State (what every view pays), plus the exporter's aggregates
  (which hold their own State), and plus celery-exporter's approach as the reference (Celery's
  State and prometheus_client's Counter/Histogram, modelled by ``tests/exporter/oracle.py``),
  on the same generated task lives; configurations alternate round by round, medians kept;
* scrape: milliseconds to render every family with prometheus_client at 1,000 and 10,000
  series (what each scrape cost before), and to GET /metrics over HTTP from the exporter's
  kept renderings, idle and while events are ingested at full speed (median of repeats);
* memory: traced Python allocations after 100,000 distinct task names, with no cap and with
  ``--max-series 1000``.
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import sys
import threading
import time
import urllib.request
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kombu import Connection
from prometheus_client import CollectorRegistry

from evtools.exporter.aggregates import CeleryMetrics
from evtools.exporter.collector import CeleryCollector, HealthCollector
from evtools.exporter.exposition import Exposition, render
from evtools.exporter.http import MetricsServer
from evtools.exporter.service import SCRAPE_SWITCH_INTERVAL
from evtools.exporter.config import ExporterConfig
from evtools.receiver import EventReceiver, check_event
from evtools.state import State
from tests.exporter.oracle import OracleExporter

OUT = Path(__file__).resolve().parent / "EXPORTER.md"
QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")


def task_lives(count: int, names: int = 20, hosts: int = 4) -> Iterator[dict[str, Any]]:
    """Bodies of ``count`` task lives (sent, received, started, succeeded), as workers send them."""
    now = time.time()
    for n in range(count):
        uuid = f"00000000-0000-0000-0000-{n:012d}"
        name, host = f"proj.task{n % names}", f"w{n % hosts}@host{n % hosts}"
        base = {"uuid": uuid, "utcoffset": 0, "pid": 1}
        yield {**base, "type": "task-sent", "hostname": "gen1@web", "name": name,
               "queue": "celery", "timestamp": now, "clock": 4 * n + 1}
        yield {**base, "type": "task-received", "hostname": host, "name": name, "args": "()",
               "kwargs": "{}", "timestamp": now + 0.01, "clock": 4 * n + 2}
        yield {**base, "type": "task-started", "hostname": host, "timestamp": now + 0.02,
               "clock": 4 * n + 3}
        yield {**base, "type": "task-succeeded", "hostname": host, "runtime": 0.05 * (n % 40),
               "result": "3", "timestamp": now + 0.07, "clock": 4 * n + 4}


def ingest_rate(lives: int, handler: Callable[[dict[str, Any]], None] | None) -> float:
    """Events per second through the receiver's per-event path (and ``handler``, if given)."""
    bodies = [dict(body) for body in task_lives(lives)]
    receiver = EventReceiver(Connection("memory://"), handlers={})
    prepare = receiver.event_from_message
    gc.collect()
    started = time.perf_counter()
    for body in bodies:
        _, event = prepare(check_event(body))
        if handler is not None:
            handler(event)
    return len(bodies) / (time.perf_counter() - started)


#: What each ingest row puts after the receiver: a fresh handler per round (None: nothing).
INGEST_PATHS: dict[str, Callable[[], Callable[[dict[str, Any]], Any] | None]] = {
    "receiver alone": lambda: None,
    "receiver + evtools State": lambda: State(max_tasks_in_memory=10000).event,
    "receiver + exporter aggregates (their State included)":
        lambda: CeleryMetrics(ExporterConfig()).on_event,
    "receiver + celery-exporter's approach (Celery State + prometheus_client metrics)":
        lambda: OracleExporter().on_event,
}


def ingest_rows(lives: int, rounds: int) -> list[str]:
    """The ingest table: each path once per round, in turn, so load affects them alike."""
    rates: dict[str, list[float]] = {name: [] for name in INGEST_PATHS}
    for _ in range(rounds):
        for name, make in INGEST_PATHS.items():
            rates[name].append(ingest_rate(lives, make()))
    median = {name: statistics.median(values) for name, values in rates.items()}
    receiver, state = median["receiver alone"], median["receiver + evtools State"]
    exporter = median["receiver + exporter aggregates (their State included)"]
    reference = median["receiver + celery-exporter's approach (Celery State + prometheus_client metrics)"]
    per_event = {name: 1e6 / rate for name, rate in median.items()}
    rows = ["| path | events/s | µs/event |", "| --- | ---: | ---: |"]
    rows += [f"| {name} | {rate:,.0f} | {per_event[name]:.1f} |" for name, rate in median.items()]
    own = per_event["receiver + exporter aggregates (their State included)"] - per_event[
        "receiver + evtools State"]
    state_own = per_event["receiver + evtools State"] - per_event["receiver alone"]
    rows += ["", f"The aggregates' own cost beyond their State: {own:.1f} µs/event "
             f"({own / state_own:.0%} of the State's own {state_own:.1f} µs). "
             f"The exporter ingests {exporter / reference:.1f}× as many events/s as "
             f"celery-exporter's approach, {exporter / receiver:.0%} of the receiver alone "
             f"({exporter / state:.0%} of receiver + State).", ""]
    return rows


def metrics_with_series(series: int) -> CeleryMetrics:
    """Aggregates holding about ``series`` series in all (samples in the exposition).

    A task name brings 42: 8 counters and 2 histograms of 17 samples (15 buckets, sum, count).
    """
    metrics = CeleryMetrics(ExporterConfig(worker_timeout=0, purge_offline_after=0))
    names = max(1, series // 42)
    for body in task_lives(names, names=names, hosts=1):
        metrics.on_event({**body, "local_received": body["timestamp"]})
    return metrics


def exposition_for(metrics: CeleryMetrics, max_age: float = 2.0) -> tuple[Exposition, CollectorRegistry]:
    """The exporter's Exposition over ``metrics``, and one registry holding every family
    (what each scrape rendered before renderings were kept)."""
    celery, health, everything = (CollectorRegistry(auto_describe=False) for _ in range(3))
    celery.register(CeleryCollector(metrics))
    health.register(HealthCollector(metrics))
    everything.register(CeleryCollector(metrics))
    everything.register(HealthCollector(metrics))
    return Exposition(metrics, celery, health, max_age=max_age), everything


def get_ms(url: str, openmetrics: bool) -> float:
    """Milliseconds for one HTTP GET of /metrics, body read."""
    accept = "application/openmetrics-text; version=1.0.0" if openmetrics else "text/plain"
    started = time.perf_counter()
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Accept": accept})) as reply:
        reply.read()
    return (time.perf_counter() - started) * 1000


def feed_forever(metrics: CeleryMetrics, names: int, stop: threading.Event) -> None:
    """Task lives of the same ``names`` (so the same series) as fast as they go, until ``stop``."""
    receiver = EventReceiver(Connection("memory://"), handlers={})
    bodies = [receiver.event_from_message(check_event(dict(body)))[1]
              for body in task_lives(2000, names=names, hosts=1)]
    while not stop.is_set():
        for event in bodies:
            metrics.on_event(event)


#: Seconds between two scrapes in the ingesting part of the scrape bench.
SCRAPE_INTERVAL = 3.0


def scrape_row(series: int, repeats: int) -> str:
    """One row: rendering every family per scrape (before) vs scrapes served from memory over
    HTTP, idle and while events are ingested at full speed (the background renderer on),
    the latter next to an exposition that renders at each scrape, as before."""
    metrics = metrics_with_series(series)
    idle, everything = exposition_for(metrics)
    busy, _ = exposition_for(metrics)
    each_scrape, _ = exposition_for(metrics, max_age=0)
    servers = [MetricsServer(exposition.body, "127.0.0.1", 0)
               for exposition in (idle, busy, each_scrape)]
    for server in servers:
        server.start()
    idle_url, busy_url, before_url = (f"http://127.0.0.1:{server.port}/metrics" for server in servers)
    times: dict[str, list[float]] = {}

    def scrape(name: str, url: str) -> None:
        for openmetrics, key in ((False, "text"), (True, "om")):
            times.setdefault(f"{name} {key}", []).append(get_ms(url, openmetrics))

    try:
        get_ms(idle_url, False), get_ms(idle_url, True)  # the first scrape in a format renders it
        for _ in range(repeats):
            for openmetrics, key in ((False, "text"), (True, "om")):
                started = time.perf_counter()
                render(everything, openmetrics)
                times.setdefault(f"render {key}", []).append((time.perf_counter() - started) * 1000)
            scrape("idle", idle_url)
        stop = threading.Event()
        feeder = threading.Thread(target=feed_forever, args=(metrics, max(1, series // 42), stop))
        get_ms(busy_url, False), get_ms(busy_url, True)
        busy.start()
        feeder.start()
        renders, started = busy.renders, time.monotonic()
        try:
            for number in range(1, repeats + 1):  # a Prometheus scraping every SCRAPE_INTERVAL
                time.sleep(max(0.0, started + number * SCRAPE_INTERVAL - time.monotonic()))
                scrape("after", busy_url)
                scrape("before", before_url)
            background = busy.renders - renders
        finally:
            stop.set()
            feeder.join()
            busy.stop()
    finally:
        for server in servers:
            server.stop()
    text = idle.body(False).decode()
    count = sum(1 for line in text.splitlines() if line.startswith("celery_") and "_created" not in line)
    median = {key: statistics.median(values) for key, values in times.items()}
    cells = [f"{count:,}", f"{median['render text']:.1f}", f"{median['render om']:.1f}",
             f"{median['idle text']:.1f}", f"{median['idle om']:.1f}"]
    cells += [f"{median[key]:.1f} / {max(times[key]):.0f}"
              for key in ("before text", "before om", "after text", "after om")]
    cells.append(f"{background / (2 * repeats):.1f}")
    return "| " + " | ".join(cells) + " |"


def memory_mb(distinct: int, cap: int) -> float:
    """Traced MiB held by the aggregates after ``distinct`` task names (one event each)."""
    gc.collect()
    tracemalloc.start()
    metrics = CeleryMetrics(ExporterConfig(worker_timeout=0, purge_offline_after=0,
                                           max_series_per_family=cap))
    now = time.time()
    for n in range(distinct):
        metrics.on_event({"type": "task-received", "uuid": f"id-{n}", "name": f"proj.t{n}",
                          "hostname": "w@h", "timestamp": now, "local_received": now,
                          "clock": n + 1, "utcoffset": 0})
    gc.collect()
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del metrics
    return current / 2**20


def main() -> int:
    sys.setswitchinterval(SCRAPE_SWITCH_INTERVAL)  # as the exporter process runs
    lives = 5000 if QUICK else 50000
    repeats = 3 if QUICK else 7
    distinct = 20000 if QUICK else 100000
    rows = ["# evtools exporter: bench", "",
            f"{platform.python_implementation()} {platform.python_version()}, "
            f"{os.cpu_count()} CPUs, {'quick' if QUICK else 'full'} run, "
            f"{time.strftime('%Y-%m-%d')}. `make bench` (python -m bench.exporter).", "",
            f"## Ingest (events/s, median of {3 if QUICK else 5} alternating rounds)", ""]
    rows += ingest_rows(lives, rounds=3 if QUICK else 5)
    rows += ["## Scrape time (ms, median of repeats)", "",
             "*render*: prometheus_client formatting every family, what each scrape cost "
             "before renderings were kept. *scrape*: an HTTP GET of /metrics; *idle*: served "
             "from memory (the celery_* families rendered ahead, the evtools_* ones at the "
             "scrape); *while ingesting*: another thread feeds events at full speed into the "
             "same series while both formats are scraped every "
             f"{SCRAPE_INTERVAL:g} s from an exposition rendering at each scrape (*before*) "
             "and from the kept renderings with the background renderer on "
             "(`--max-staleness 2`, *after*), median / max; *background renderings*: how "
             "many the renderer made per scrape meanwhile. The process runs with the "
             "exporter's 1 ms GIL switch interval.", "",
             "| series | render, text | render, OpenMetrics | scrape idle, text | "
             "scrape idle, OpenMetrics | while ingesting, before, text | "
             "while ingesting, before, OpenMetrics | while ingesting, after, text | "
             "while ingesting, after, OpenMetrics | background renderings per scrape |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for target in (1000, 10000):
        rows.append(scrape_row(target, repeats))
    rows += ["", f"## Memory after {distinct:,} distinct task names (tracemalloc, MiB)", "",
             "| setting | MiB |", "| --- | ---: |",
             f"| no cap | {memory_mb(distinct, 0):.1f} |",
             f"| --max-series 1000 | {memory_mb(distinct, 1000):.1f} |", "",
             "The State behind the labels keeps at most 10,000 tasks either way; the cap bounds "
             "the series.", ""]
    out = OUT.with_name("EXPORTER-quick.md") if QUICK else OUT
    out.write_text("\n".join(rows))
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
