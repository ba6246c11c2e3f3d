"""``evtools control`` against real Celery workers on real Redis and RabbitMQ."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from kombu import Connection
from kombu.pidbox import Mailbox

from evtools import control
from evtools.receiver import EventReceiver
from tests.helpers import Capture, wait_for

TASK_EVENTS = ("task-received", "task-started", "task-succeeded")


def evtools_control(broker_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m evtools control ARGS -b URL`` to its end."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("EVTOOLS_BROKER_URL", "CELERY_BROKER_URL")}
    return subprocess.run([sys.executable, "-m", "evtools", "control", *args, "-b", broker_url],
                          capture_output=True, text=True, timeout=120, env=env)


def wait_until_listening(broker_url: str, *workers) -> None:
    """Wait until every worker answers a ping (its pidbox is consuming)."""
    names = {worker.hostname for worker in workers}
    with Connection(broker_url) as connection:
        def answered() -> bool:
            replies = control.ping(connection, destination=sorted(names), timeout=0.5)
            return names <= {host for reply in replies for host in reply}
        assert wait_for(answered, timeout=90), [worker.log_tail() for worker in workers]


class Events:
    """Every event on the broker, captured by an evtools receiver in a thread."""

    def __init__(self, broker_url: str) -> None:
        self.seen: list[dict] = []
        self.connection = Connection(broker_url)
        self.capture = Capture(EventReceiver(self.connection, handlers={"*": self.seen.append}),
                               wakeup=False)

    def since(self, mark: int, hostname: str, types: tuple[str, ...] = TASK_EVENTS) -> list[dict]:
        return [event for event in self.seen[mark:]
                if event.get("hostname") == hostname and event.get("type") in types]

    def find(self, hostname: str, type_: str, uuid: str) -> dict | None:
        return next((event for event in list(self.seen) if event.get("hostname") == hostname
                     and event.get("type") == type_ and event.get("uuid") == uuid), None)


@pytest.fixture
def events(broker_url: str) -> Iterator[Events]:
    watcher = Events(broker_url)
    watcher.capture.start()
    yield watcher
    watcher.capture.stop()
    watcher.connection.release()


def run_add_unseen(client, worker, events: Events, hostname: str) -> None:
    """Send add; once the worker's log says it ran, check that it sent no task event."""
    mark = len(events.seen)
    task_id = client.send_task("interop_tasks.add", args=(2, 2)).id
    assert wait_for(lambda: f"interop_tasks.add[{task_id}] succeeded" in
                    worker.log_path.read_text(errors="replace"), timeout=60), worker.log_tail()
    time.sleep(1.5)  # time enough for an event the worker would have sent to arrive
    assert events.since(mark, hostname) == []


def test_enable_events_then_disable_events_on_a_worker_started_without_E(
        broker_url, celery_worker, celery_client, events):
    hostname = "quiet@control"
    worker = celery_worker(broker_url, hostname=hostname, events=False)
    wait_until_listening(broker_url, worker)
    run_add_unseen(celery_client, worker, events, hostname)

    enabled = evtools_control(broker_url, "enable_events", "-d", hostname)
    assert (enabled.returncode, enabled.stdout) == (0, f"-> {hostname}: OK task events enabled\n")
    task_id = celery_client.send_task("interop_tasks.add", args=(2, 3)).id
    assert wait_for(lambda: events.find(hostname, "task-succeeded", task_id), timeout=60), \
        worker.log_tail()
    assert events.find(hostname, "task-received", task_id) is not None
    assert events.find(hostname, "task-started", task_id) is not None

    disabled = evtools_control(broker_url, "disable_events", "-d", hostname)
    assert disabled.returncode == 0
    assert disabled.stdout == f"-> {hostname}: OK task events disabled\n"
    run_add_unseen(celery_client, worker, events, hostname)


def test_ping_lists_every_live_worker_and_destination_limits_it(broker_url, celery_worker):
    workers = [celery_worker(broker_url, hostname=name, events=False)
               for name in ("w1@control", "w2@control")]
    wait_until_listening(broker_url, *workers)

    everyone = evtools_control(broker_url, "ping")
    assert everyone.returncode == 0, everyone.stderr
    assert sorted(everyone.stdout.splitlines()) == ["-> w1@control: OK pong",
                                                    "-> w2@control: OK pong"]
    one = evtools_control(broker_url, "ping", "-d", "w2@control")
    assert (one.returncode, one.stdout) == (0, "-> w2@control: OK pong\n")

    as_json = evtools_control(broker_url, "ping", "--json")
    lines = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert sorted(line["hostname"] for line in lines) == ["w1@control", "w2@control"]
    assert all(line["reply"] == {"ok": "pong"} for line in lines)

    nobody = evtools_control(broker_url, "ping", "-d", "w9@control", "--timeout", "0.3")
    assert nobody.returncode == 1 and nobody.stdout == ""
    assert nobody.stderr == "Error: No nodes replied within time constraint\n"


def test_revoke_terminate_kills_a_running_task(broker_url, celery_worker, celery_client, events):
    hostname = "busy@control"
    worker = celery_worker(broker_url, hostname=hostname, events=True)
    wait_until_listening(broker_url, worker)
    task_id = celery_client.send_task("interop_tasks.slow", args=(60,)).id
    assert wait_for(lambda: events.find(hostname, "task-started", task_id), timeout=60), \
        worker.log_tail()

    revoked = evtools_control(broker_url, "revoke", task_id, "--terminate", "-d", hostname)
    assert (revoked.returncode, revoked.stdout) == (0, f"-> {hostname}: OK terminate: {task_id}\n")
    assert wait_for(lambda: events.find(hostname, "task-revoked", task_id), timeout=30), \
        worker.log_tail()
    event = events.find(hostname, "task-revoked", task_id)
    assert event["terminated"] is True and event["signum"] == 15 and event["expired"] is False


def test_rate_limit_sets_the_rate_and_an_unknown_task_is_an_error(broker_url, celery_worker):
    hostname = "limited@control"
    worker = celery_worker(broker_url, hostname=hostname, events=False)
    wait_until_listening(broker_url, worker)

    limited = evtools_control(broker_url, "rate_limit", "interop_tasks.add", "10/m")
    assert limited.returncode == 0, limited.stderr
    assert limited.stdout == f"-> {hostname}: OK new rate limit set successfully\n"
    # The reply does not repeat the rate; the worker's log does.
    assert wait_for(lambda: "New rate limit for tasks of type interop_tasks.add: 10/m." in
                    worker.log_path.read_text(errors="replace"), timeout=10), worker.log_tail()

    unknown = evtools_control(broker_url, "rate_limit", "interop_tasks.nope", "10/m", "--json")
    assert unknown.returncode == 1
    assert json.loads(unknown.stdout) == {"hostname": hostname, "reply": {"error": "unknown task"}}


def test_heartbeat_makes_the_worker_send_one_now(broker_url, celery_worker, events):
    hostname = "beating@control"
    worker = celery_worker(broker_url, hostname=hostname, events=False)
    wait_until_listening(broker_url, worker)
    # The worker's own heartbeats say freq=2.0; the one asked for by the command says freq=5.
    asked = evtools_control(broker_url, "heartbeat", "-d", hostname)
    assert (asked.returncode, asked.stdout) == (0, "")
    assert wait_for(lambda: any(event.get("freq") == 5 for event in
                                events.since(0, hostname, ("worker-heartbeat",))), timeout=10)


def _redis_leftovers(broker_url: str, names: list[str]) -> list[str]:
    import redis
    client = redis.Redis.from_url(broker_url)
    keys = [key.decode() for key in client.keys("*")]
    members = [member.decode(errors="replace")
               for member in client.smembers("_kombu.binding.reply.celery.pidbox")]
    return [text for text in keys + members
            if text.endswith(".reply.celery.pidbox") or any(name in text for name in names)]


def _amqp_leftovers(connection: Connection, names: list[str]) -> list[str]:
    left = []
    for name in names:
        channel = connection.channel()
        try:
            channel.queue_declare(name, passive=True)
            left.append(name)
        except connection.channel_errors as exc:
            assert getattr(exc, "code", None) == 404, exc
        finally:
            if channel.is_open:
                channel.close()
    return left


def test_no_reply_queue_is_left_behind(broker_url, celery_worker, monkeypatch):
    hostname = "tidy@control"
    worker = celery_worker(broker_url, hostname=hostname, events=False)
    wait_until_listening(broker_url, worker)
    names: list[str] = []
    get_reply_queue = Mailbox.get_reply_queue

    def recording(self):
        queue = get_reply_queue(self)
        names.append(queue.name)
        return queue
    monkeypatch.setattr(Mailbox, "get_reply_queue", recording)
    with Connection(broker_url) as connection:  # kept open: exclusive queues would live on
        started = time.monotonic()
        assert control.ping(connection) == [{hostname: {"ok": "pong"}}]
        everyone = time.monotonic() - started
        started = time.monotonic()
        assert control.ping(connection, destination=[hostname]) == [{hostname: {"ok": "pong"}}]
        one = time.monotonic() - started
        control.enable_events(connection)
        control.disable_events(connection)
        control.heartbeat(connection)
        control.revoke(connection, "no-such-task")
        control.rate_limit(connection, "interop_tasks.add", "5/s")
        assert len(names) == 6  # kombu may give a later call the same oid, hence name
        # Without a destination the wait ends one timeout after the last reply; with one, at once.
        assert 1.0 <= everyone < 3.0 and one < 0.5, (everyone, one)
        if broker_url.startswith("redis"):
            assert _redis_leftovers(broker_url, names) == []
        else:
            assert _amqp_leftovers(connection, names) == []
    for args in (["ping"], ["enable_events"], ["revoke", "x", "--terminate"], ["heartbeat"]):
        assert evtools_control(broker_url, *args).returncode == 0
    if broker_url.startswith("redis"):
        assert _redis_leftovers(broker_url, names) == []


def test_rabbitmq_lists_no_reply_queue_after_commands(own_rabbit, celery_worker):
    hostname = "listed@control"
    worker = celery_worker(own_rabbit.url, hostname=hostname, events=False)
    wait_until_listening(own_rabbit.url, worker)

    def queues() -> list[str]:
        done = subprocess.run(own_rabbit._ctl("list_queues", "name", "-q", "--no-table-headers"),
                              env=own_rabbit._env(), capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return sorted(done.stdout.split())

    before = queues()
    with Connection(own_rabbit.url) as connection:
        control.ping(connection)
        control.revoke(connection, "no-such-task", terminate=True)
        control.rate_limit(connection, "interop_tasks.add", "5/s")
        assert queues() == before
    assert evtools_control(own_rabbit.url, "ping").returncode == 0
    assert queues() == before
    assert not [name for name in before if "reply" in name]
