"""evtools exporter with a real Celery worker on Redis and RabbitMQ, scraped by a real Prometheus.

The PromQL is celery-exporter's mixin alerts' (CeleryTaskHighFailRate, CeleryWorkerDown,
CeleryHighQueueLength), narrowed to this test's scrape target with a ``run`` label.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
import uuid
from typing import Any

import pytest

from tests.helpers import wait_for
from tests.integration.cli_process import EvtoolsProcess
from tests.servers import free_port

FAIL_RATE = """
sum(increase(celery_task_failed_total{{job=~".*celery.*",queue_name!~"None",name!~"None",{run}}}[10m]))
  by (job, namespace, queue_name, name)
/
( sum(increase(celery_task_failed_total{{job=~".*celery.*",queue_name!~"None",name!~"None",{run}}}[10m]))
    by (job, namespace, queue_name, name)
  + sum(increase(celery_task_succeeded_total{{job=~".*celery.*",queue_name!~"None",name!~"None",{run}}}[10m]))
    by (job, namespace, queue_name, name) )
* 100 > 5
"""
WORKER_DOWN = 'celery_worker_up{{job=~".*celery.*",{run}}} == 0'
QUEUE_LENGTH = ('sum(celery_queue_length{{job=~".*celery.*",queue_name!~"None",{run}}}) '
                'by (job, namespace, queue_name) > 100')


def query(prometheus: Any, promql: str) -> list[dict[str, Any]]:
    """An instant query's result vector."""
    url = f"{prometheus.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=10) as reply:
        answer = json.load(reply)
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def values(prometheus: Any, promql: str) -> dict[str, float]:
    """``{name or queue_name or hostname: value}`` of a query's result."""
    result = {}
    for row in query(prometheus, promql):
        metric = row["metric"]
        key = metric.get("name") or metric.get("queue_name") or metric.get("hostname") or ""
        result[key] = float(row["value"][1])
    return result


@pytest.fixture
def scraped_exporter(prometheus, broker_url, request):
    """`evtools exporter` on a free port, listed as a Prometheus target with its own run label."""
    run = uuid.uuid4().hex[:12]
    port = free_port()
    exporter = EvtoolsProcess("exporter", "--broker-url", broker_url, "--host", "127.0.0.1",
                              "--port", str(port), "-Q", "parked", "--refresh-interval", "1",
                              "--log-level", "info")
    exporter.wait_ready(timeout=60)
    target = prometheus.targets_dir / f"{run}.json"
    target.write_text(json.dumps([{"targets": [f"127.0.0.1:{port}"],
                                   "labels": {"run": run, "broker": request.node.callspec.id}}]))
    yield exporter, f'run="{run}"', port
    target.unlink()
    assert exporter.terminate() == 0, exporter.report()


@pytest.mark.celery
def test_prometheus_answers_the_mixin_alert_queries(scraped_exporter, prometheus, celery_worker,
                                                     celery_client, broker_url):
    exporter, run, port = scraped_exporter
    worker = celery_worker(broker_url, hostname="w1@exporter-test")
    up = f'celery_worker_up{{{run},hostname="exporter-test"}}'
    assert wait_for(lambda: values(prometheus, up).get("exporter-test") == 1, timeout=90), \
        worker.log_tail() + exporter.report()

    for number in range(5):
        celery_client.send_task("interop_tasks.add", args=(number, 1))
    celery_client.send_task("interop_tasks.fail")
    failed = f'sum by (name) (celery_task_failed_total{{{run}}})'
    assert wait_for(lambda: values(prometheus, failed).get("interop_tasks.fail") == 1, timeout=60), \
        exporter.report()
    for _ in range(3):  # after Prometheus saw the series, so increase() counts these
        celery_client.send_task("interop_tasks.fail")
    succeeded = f'sum by (name) (celery_task_succeeded_total{{{run}}})'
    assert wait_for(lambda: values(prometheus, failed).get("interop_tasks.fail") == 4
                    and values(prometheus, succeeded).get("interop_tasks.add") == 5, timeout=60)
    fail_rate = FAIL_RATE.format(run=run)
    assert wait_for(lambda: "interop_tasks.fail" in values(prometheus, fail_rate), timeout=30)
    rates = values(prometheus, fail_rate)
    assert set(rates) == {"interop_tasks.fail"} and rates["interop_tasks.fail"] == 100
    runtime = f'sum by (name) (celery_task_runtime_count{{{run}}})'
    assert values(prometheus, runtime)["interop_tasks.add"] == 5
    by_exception = f'sum by (exception) (celery_task_failed_total{{{run},exception!=""}})'
    assert [(row["metric"]["exception"], row["value"][1])
            for row in query(prometheus, by_exception)] == [("ValueError", "4")]

    for number in range(101):  # nobody consumes "parked"
        celery_client.send_task("interop_tasks.add", args=(number, 0), queue="parked")
    queue_alert = QUEUE_LENGTH.format(run=run)
    assert wait_for(lambda: values(prometheus, queue_alert).get("parked") == 101, timeout=60), \
        exporter.report()
    assert values(prometheus, f'celery_active_worker_count{{{run},queue_name="celery"}}') == {"celery": 1}
    assert values(prometheus, f'celery_active_process_count{{{run},queue_name="celery"}}') == {"celery": 2}

    worker_down = WORKER_DOWN.format(run=run)
    assert values(prometheus, worker_down) == {}
    worker.stop()
    assert wait_for(lambda: values(prometheus, worker_down) == {"exporter-test": 0}, timeout=60), \
        exporter.report()
