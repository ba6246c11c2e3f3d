"""``make bench`` (exporter part): ingest rate, scrape time and memory of ``evtools exporter``.

    python -m bench.exporter            # writes bench/EXPORTER.md
    BENCH_QUICK=1 python -m bench.exporter

In-process and broker-free, so the figures are the exporter's own cost:

* ingest: events/s through the receiver alone (check + prepare, as for every view), through
  the receiver plus evtools' State (what every view pays), plus the exporter's aggregates
  (which hold their own State), and plus celery-exporter's approach as the reference (Celery's
  State and prometheus_client's Counter/Histogram, modelled by ``tests/exporter/oracle.py``),
  on the same generated task lives; configurations alternate round by round, medians kept;
* scrape: milliseconds to render /metrics at 1,000 and 10,000 series (median of repeats);
* memory: traced Python allocations after 100,000 distinct task names, with no cap and with
  ``--max-series 1000``.
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kombu import Connection
from prometheus_client import CollectorRegistry, generate_latest

from evtools.exporter.aggregates import CeleryMetrics
from evtools.exporter.collector import CeleryCollector
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


def scrape_ms(metrics: CeleryMetrics, repeats: int) -> tuple[float, int]:
    """Median milliseconds to render the exposition, and how many series it has."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CeleryCollector(metrics))
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        text = generate_latest(registry)
        times.append((time.perf_counter() - started) * 1000)
    lines = [line for line in text.decode().splitlines()
             if line.startswith("celery_") and "_created" not in line]
    return statistics.median(times), len(lines)


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
    lives = 5000 if QUICK else 50000
    repeats = 3 if QUICK else 7
    distinct = 20000 if QUICK else 100000
    rows = ["# evtools exporter: bench", "",
            f"{platform.python_implementation()} {platform.python_version()}, "
            f"{os.cpu_count()} CPUs, {'quick' if QUICK else 'full'} run, "
            f"{time.strftime('%Y-%m-%d')}. `make bench` (python -m bench.exporter).", "",
            f"## Ingest (events/s, median of {3 if QUICK else 5} alternating rounds)", ""]
    rows += ingest_rows(lives, rounds=3 if QUICK else 5)
    rows += ["## Scrape time (render /metrics, median)", "",
             "| series | ms |", "| ---: | ---: |"]
    for target in (1000, 10000):
        ms, count = scrape_ms(metrics_with_series(target), repeats)
        rows.append(f"| {count:,} | {ms:.1f} |")
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
