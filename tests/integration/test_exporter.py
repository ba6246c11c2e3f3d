"""evtools exporter with a real Celery worker on Redis and RabbitMQ, scraped by a real Prometheus.

The PromQL is celery-exporter's mixin alerts' (CeleryTaskHighFailRate, CeleryWorkerDown,
CeleryHighQueueLength), narrowed to this test's scrape target with a ``run`` label; the alerts
themselves (docs/examples/celery-mixin-alerts.yml) are loaded into that Prometheus as rules.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
import urllib.request
import uuid
from datetime import datetime, timezone
from pathlib import Path
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


MIXIN_ALERTS = Path(__file__).resolve().parents[2] / "docs" / "examples" / "celery-mixin-alerts.yml"


def mixin_alerts_for(run: str, group: str) -> str:
    """celery-exporter's mixin alerts as its own config would make them for this test: the
    selector (``celerySelector``) narrowed to this run's target, ``for`` 2 s, the group renamed."""
    text = MIXIN_ALERTS.read_text()
    selector = 'job=~".*celery.*"'
    assert text.count(selector) == 5 and text.count('"for": ') == 3  # the file we know
    text = text.replace(selector, f"{selector},{run}")
    text = re.sub(r'"for": "\w+"', '"for": "2s"', text)
    return text.replace('"name": "celery"', f'"name": "{group}"')


def rule_group(prometheus: Any, group: str) -> dict[str, Any]:
    """A rule group as /api/v1/rules describes it (empty when not loaded)."""
    with urllib.request.urlopen(f"{prometheus.url}/api/v1/rules?type=alert", timeout=10) as reply:
        answer = json.load(reply)
    assert answer["status"] == "success", answer
    return next((found for found in answer["data"]["groups"] if found["name"] == group), {})


def alerts(prometheus: Any, group: str) -> dict[str, dict[str, str]]:
    """``{alert name: {name, queue_name or hostname of each pending or firing alert: state}}``."""
    return {rule["name"]: {alert["labels"].get("name") or alert["labels"].get("queue_name")
                           or alert["labels"].get("hostname"): alert["state"]
                           for alert in rule["alerts"]}
            for rule in rule_group(prometheus, group).get("rules", [])}


def evaluated_after(prometheus: Any, group: str, when: float) -> bool:
    """Whether the group's rules were last evaluated after ``when`` (a time.time())."""
    last = rule_group(prometheus, group).get("lastEvaluation", "")
    match = re.match(r"(.*T[\d:]+)(?:\.(\d+))?Z$", last)
    if not match:
        return False
    seconds = datetime.fromisoformat(match.group(1)).replace(tzinfo=timezone.utc).timestamp()
    return seconds + float(f"0.{match.group(2) or 0}") > when


def quiet_after_evaluation(prometheus: Any, group: str) -> dict[str, dict[str, str]]:
    """The pending or firing alerts once the rules were evaluated on what Prometheus has now."""
    now = time.time()
    assert wait_for(lambda: evaluated_after(prometheus, group, now), timeout=30)
    return {name: active for name, active in alerts(prometheus, group).items() if active}


def firing(prometheus: Any, group: str) -> dict[str, set[str]]:
    """``{alert name: {what fires}}`` for the alerts of a group that fire."""
    return {name: {key for key, state in active.items() if state == "firing"}
            for name, active in alerts(prometheus, group).items()
            if any(state == "firing" for state in active.values())}


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


@pytest.fixture
def mixin_alerts(prometheus, scraped_exporter):
    """celery-exporter's mixin alerts, loaded into Prometheus for this test's target: the group name."""
    _, run, _ = scraped_exporter
    group = f"celery-mixin-{run.split('=')[1].strip(chr(34))}"
    rules = prometheus.rules_dir / f"{group}.yml"
    rules.write_text(mixin_alerts_for(run, group))
    prometheus.reload()
    assert wait_for(lambda: set(alerts(prometheus, group)) == {
        "CeleryTaskHighFailRate", "CeleryHighQueueLength", "CeleryWorkerDown"}, timeout=30)
    yield group
    rules.unlink()
    prometheus.reload()


@pytest.mark.celery
def test_prometheus_answers_the_mixin_queries_and_fires_its_alerts(
        scraped_exporter, mixin_alerts, prometheus, celery_worker, celery_client, broker_url):
    exporter, run, port = scraped_exporter
    worker = celery_worker(broker_url, hostname="w1@exporter-test")
    up = f'celery_worker_up{{{run},hostname="exporter-test"}}'
    assert wait_for(lambda: values(prometheus, up).get("exporter-test") == 1, timeout=90), \
        worker.log_tail() + exporter.report()
    for number in range(5):
        celery_client.send_task("interop_tasks.add", args=(number, 1))
    succeeded = f'sum by (name) (celery_task_succeeded_total{{{run}}})'
    assert wait_for(lambda: values(prometheus, succeeded).get("interop_tasks.add") == 5, timeout=60), \
        exporter.report()
    assert quiet_after_evaluation(prometheus, mixin_alerts) == {}  # a worker up, tasks succeed

    celery_client.send_task("interop_tasks.fail")
    failed = f'sum by (name) (celery_task_failed_total{{{run}}})'
    assert wait_for(lambda: values(prometheus, failed).get("interop_tasks.fail") == 1, timeout=60), \
        exporter.report()
    for _ in range(3):  # after Prometheus saw the series, so increase() counts these
        celery_client.send_task("interop_tasks.fail")
    assert wait_for(lambda: values(prometheus, failed).get("interop_tasks.fail") == 4
                    and values(prometheus, succeeded).get("interop_tasks.add") == 5, timeout=60)
    fail_rate = FAIL_RATE.format(run=run)
    assert wait_for(lambda: "interop_tasks.fail" in values(prometheus, fail_rate), timeout=30)
    rates = values(prometheus, fail_rate)
    assert set(rates) == {"interop_tasks.fail"} and rates["interop_tasks.fail"] == 100
    assert wait_for(lambda: firing(prometheus, mixin_alerts) == {
        "CeleryTaskHighFailRate": {"interop_tasks.fail"}}, timeout=30), alerts(prometheus, mixin_alerts)
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
    assert wait_for(lambda: firing(prometheus, mixin_alerts).get("CeleryHighQueueLength") == {"parked"},
                    timeout=30), alerts(prometheus, mixin_alerts)

    worker_down = WORKER_DOWN.format(run=run)
    assert values(prometheus, worker_down) == {}
    assert "CeleryWorkerDown" not in quiet_after_evaluation(prometheus, mixin_alerts)
    worker.stop()
    assert wait_for(lambda: values(prometheus, worker_down) == {"exporter-test": 0}, timeout=60), \
        exporter.report()
    assert wait_for(lambda: firing(prometheus, mixin_alerts).get("CeleryWorkerDown") == {"exporter-test"},
                    timeout=30), alerts(prometheus, mixin_alerts)
