"""The running exporter: queue gauges on real brokers, scrapes that never wait, health, formats."""

from __future__ import annotations

import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from kombu import Connection, Exchange, Producer, Queue

from evtools.config import Settings
from evtools.exporter.brokerstats import measure_queues
from evtools.exporter.config import ExporterConfig
from evtools.exporter.service import Exporter, ServeOptions
from evtools.source import LiveSource, ReplaySource
from tests.celery_compare import CORPUS
from tests.helpers import wait_for


def get(url: str, accept: str | None = None) -> tuple[int, str, str]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, reply.headers["Content-Type"], reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def publish(connection: Connection, queue: Queue, priorities: list[int]) -> None:
    producer = Producer(connection.default_channel)
    for priority in priorities:
        producer.publish({"n": priority}, exchange=queue.exchange, routing_key=queue.routing_key,
                         declare=[queue], priority=priority, serializer="json")


@pytest.mark.parametrize("options", [{}, {"sep": ":", "priority_steps": list(range(10))}])
def test_redis_queue_length_counts_priority_sub_queues(redis_url: str, options: dict) -> None:
    name = f"prio-{len(options)}"
    with Connection(redis_url, transport_options=options) as connection:
        queue = Queue(name, Exchange(name, "direct"), routing_key=name, max_priority=9)
        publish(connection, queue, [0, 0, 4, 7, 9])
        client = connection.default_channel.client
        assert client.llen(name) < 5  # one list alone misses the prioritised messages
        lengths, consumers = measure_queues(connection, [name, "never-declared"])
        assert lengths == {name: 5.0, "never-declared": 0.0} and consumers == {}
        queue(connection.default_channel).purge()


def test_amqp_queue_length_and_consumers(amqp_url: str) -> None:
    with Connection(amqp_url) as connection:
        queue = Queue("lengths", Exchange("lengths", "direct"), routing_key="lengths")
        publish(connection, queue, [0, 0, 0])
        # publishing is asynchronous: RabbitMQ counts the messages a moment later
        assert wait_for(lambda: measure_queues(connection, ["lengths"])[0] == {"lengths": 3.0},
                        timeout=10)
        lengths, consumers = measure_queues(connection, ["lengths", "never-declared"])
        assert lengths == {"lengths": 3.0, "never-declared": 0.0}
        assert consumers == {"lengths": 0.0, "never-declared": 0.0}
        queue(connection.default_channel).delete()


class Blackhole:
    """A TCP port that accepts connections and never answers: a broker that hangs."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.accepted.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        for conn in self.accepted:
            conn.close()
        self.sock.close()


@pytest.fixture
def replayed_exporter(tmp_path: Any) -> Iterator[Any]:
    """Start an exporter on the corpus (replayed at full speed) and a given broker URL."""
    started: list[Exporter] = []

    def start(broker_url: str, config: ExporterConfig | None = None, **serve: Any) -> Exporter:
        source = ReplaySource(open(CORPUS_EVENTS(tmp_path), encoding="utf-8"), speed=0)
        exporter = Exporter(Settings(broker_url=broker_url),
                            config or ExporterConfig(worker_timeout=0, purge_offline_after=0),
                            ServeOptions(host="127.0.0.1", port=0, **serve), source=source)
        started.append(exporter)
        threading.Thread(target=exporter.run, daemon=True).start()
        return exporter

    yield start
    for exporter in started:
        exporter.stop()


def CORPUS_EVENTS(folder: Any) -> Any:  # noqa: N802
    """The corpus as a --dump --json recording (one event per line)."""
    import json
    path = folder / "corpus-events.jsonl"
    with open(CORPUS, encoding="utf-8") as corpus, open(path, "w", encoding="utf-8") as out:
        for line in corpus:
            record = json.loads(line)
            body = json.loads(record["body_raw"])
            for event in body if isinstance(body, list) else [body]:
                event["local_received"] = record["recv_time"]
                out.write(json.dumps(event) + "\n")
    return path


def test_scrapes_answer_from_memory_while_the_broker_hangs(replayed_exporter: Any) -> None:
    hole = Blackhole()
    try:
        exporter = replayed_exporter(f"redis://127.0.0.1:{hole.port}/0",
                                     ExporterConfig(worker_timeout=0, purge_offline_after=0,
                                                    queues=("celery",)), refresh_interval=0.2)
        assert exporter.refresher is not None
        url = f"http://127.0.0.1:{exporter.server.port}/metrics"
        assert wait_for(lambda: hole.accepted, timeout=10)  # the refresher is stuck on the broker
        for _ in range(3):
            status, _, body = get(url)
            assert status == 200
            assert 'celery_task_succeeded_total{hostname="vm",name="tasks.add",queue_name="celery"} 74.0' in body
        assert exporter.refresher.rounds == 0  # no measurement ever finished, yet scrapes did
    finally:
        hole.close()


def test_self_metrics_count_events_by_type_and_their_lag(replayed_exporter: Any,
                                                          redis_url: str) -> None:
    exporter = replayed_exporter(redis_url)
    url = f"http://127.0.0.1:{exporter.server.port}/metrics"
    assert wait_for(lambda: 'evtools_events_received_total{type="worker-offline"} 3.0' in get(url)[2],
                    timeout=20)
    body = get(url)[2]
    assert 'evtools_events_received_total{type="task-sent"} 97.0' in body
    assert "evtools_event_lag_seconds_count 502.0" in body
    assert "evtools_seconds_since_last_event " in body


def test_openmetrics_is_served_to_who_asks_for_it(replayed_exporter: Any, redis_url: str) -> None:
    exporter = replayed_exporter(redis_url)
    url = f"http://127.0.0.1:{exporter.server.port}/metrics"
    status, content_type, body = get(url, accept="application/openmetrics-text;version=1.0.0,"
                                                  "text/plain;version=0.0.4;q=0.5")
    assert status == 200 and content_type.startswith("application/openmetrics-text")
    assert body.endswith("# EOF\n") and "# TYPE celery_task_sent counter" in body
    status, content_type, body = get(url, accept="text/plain")
    assert content_type.startswith("text/plain") and "# EOF" not in body
    assert "# TYPE celery_task_sent_total counter" in body
    assert get(f"http://127.0.0.1:{exporter.server.port}/")[0] == 200


def test_health_fails_when_the_broker_goes_down_and_recovers(own_redis: Any) -> None:
    settings = Settings(broker_url=own_redis.url)
    exporter = Exporter(settings, ExporterConfig(), ServeOptions(host="127.0.0.1", port=0),
                        source=LiveSource(settings, retry_startup=True))
    threading.Thread(target=exporter.run, daemon=True).start()
    health = f"http://127.0.0.1:{exporter.server.port}/health"
    try:
        assert wait_for(lambda: get(health)[0] == 200, timeout=30)
        assert "Connected to the broker" in get(health)[2]
        own_redis.kill()
        assert wait_for(lambda: get(health)[0] == 503, timeout=30)
        metrics = get(f"http://127.0.0.1:{exporter.server.port}/metrics")[2]
        assert "evtools_broker_connected 0.0" in metrics
        own_redis.start()
        assert wait_for(lambda: get(health)[0] == 200, timeout=60)
        assert "evtools_broker_reconnects_total 1.0" in get(
            f"http://127.0.0.1:{exporter.server.port}/metrics")[2]
    finally:
        exporter.stop()


def test_health_fails_after_max_silence(redis_url: str) -> None:
    settings = Settings(broker_url=redis_url)
    exporter = Exporter(settings, ExporterConfig(),
                        ServeOptions(host="127.0.0.1", port=0, health_max_silence=0.5),
                        source=LiveSource(settings))
    threading.Thread(target=exporter.run, daemon=True).start()
    health = f"http://127.0.0.1:{exporter.server.port}/health"
    try:
        assert wait_for(lambda: "no event for" in get(health)[2], timeout=30)
        assert get(health)[0] == 503 and exporter.source.connected.is_set()
    finally:
        exporter.stop()


@pytest.mark.parametrize(("types", "keys"), [
    ((), ("#",)),
    (("task-*",), ("task.#",)),
    # every task event feeds the task state: names, queues, sent times
    (("task-succeeded", "task-failed"), ("task.#",)),
    (("worker-heartbeat",), ("worker.#",)),
    (("task-failed", "worker-*"), ("task.#", "worker.#")),
    (("*",), ("#",)),
])
def test_exporter_types_bind_whole_groups(types: tuple[str, ...], keys: tuple[str, ...]) -> None:
    exporter = Exporter(Settings(broker_url="memory://"), ExporterConfig(types=types),
                        ServeOptions(host="127.0.0.1", port=0), source=ReplaySource(iter(())))
    try:
        assert exporter.routing_keys() == keys
    finally:
        exporter.server.stop()
