"""RabbitMQ least privilege: a user allowed only what evtools needs (tests/servers.py LIMITED_USER)."""

import json
import subprocess
import sys
import threading
import uuid

import pytest
from kombu import Connection, Exchange

from tests.helpers import wait_for
from tests.integration.cli_process import EvtoolsProcess
from tests.integration.terminal import Terminal

pytestmark = pytest.mark.broker

WAITING = ("exchange 'celeryev' does not exist yet in vhost '/' and RabbitMQ user 'evmonitor' "
           "lacks configure permission to declare it: waiting for a worker to declare it")


@pytest.fixture
def guest_client(amqp_url):
    from celery import Celery
    app = Celery("perm-client", broker=amqp_url, set_as_current=False)
    app.conf.update(task_send_sent_event=True, task_ignore_result=True)
    yield app
    app.close()


@pytest.mark.celery
def test_a_least_privileged_user_runs_the_dump_the_monitor_the_camera_and_control(
        amqp_url, limited_amqp_url, celery_worker, guest_client, tmp_path):
    # the worker (a full user) declares the celeryev exchange, as in production
    worker = celery_worker(amqp_url, hostname="w1@perm")
    shots = tmp_path / "shots.jsonl"
    dump = EvtoolsProcess("events", "--dump", "-b", limited_amqp_url, "-l", "info")
    camera = EvtoolsProcess("events", "-b", limited_amqp_url, "--camera",
                            "evtools.cameras.JSONLinesCamera", "--camera-opt", f"path={shots}",
                            "--frequency", "0.3", "-l", "info")
    term = Terminal("events", "-b", limited_amqp_url, width=160)
    try:
        dump.wait_ready(timeout=60)
        camera.wait_ready(timeout=60)
        assert term.wait_text("events: "), term.screen()
        assert dump.wait_for("w1@perm", stream="stdout", timeout=90), (dump.report(),
                                                                       worker.log_tail())
        task = guest_client.send_task("interop_tasks.add", args=(1, 1)).id
        assert dump.wait_for(f"task succeeded: interop_tasks.add({task})", stream="stdout",
                             timeout=60), dump.report()
        assert term.wait_for(lambda s: task in s and "SUCCESS" in s, 60), term.screen()
        assert wait_for(lambda: shots.exists() and task in shots.read_text(), 30), camera.report()

        pong = subprocess.run([sys.executable, "-m", "evtools", "control", "ping", "-b",
                               limited_amqp_url, "-d", "w1@perm", "--json", "-t", "5"],
                              capture_output=True, text=True, timeout=60)
        assert pong.returncode == 0, pong.stderr
        assert json.loads(pong.stdout)["hostname"] == "w1@perm"
        for process in (dump, camera):
            assert process.wait_for("binding to it as the workers declared it")
            assert process.terminate() == 0
            assert not any("Traceback" in line or "ACCESS_REFUSED" in line
                           for line in process.stderr), process.report()
        term.keys("q")
        assert term.wait_text("EXIT=0", 15), term.screen()
    finally:
        term.close()


def test_a_missing_permission_is_one_line_naming_it(amqp_url, noread_amqp_url):
    with Connection(amqp_url) as connection:  # the exchange exists, as a worker declares it
        Exchange("celeryev", type="topic")(connection.default_channel).declare()
    done = subprocess.run([sys.executable, "-m", "evtools", "events", "--dump", "-b",
                           noread_amqp_url], capture_output=True, text=True, timeout=90)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if not line.startswith("-> ")]
    assert lines == ["evtools: RabbitMQ user 'evnoread' lacks read permission on exchange "
                     "'celeryev' in vhost '/' (needed for Queue.bind; see docs/brokers.md)"], \
        done.stderr


def _publish_until(amqp_url, done: threading.Event, task_id: str) -> None:
    """What a worker does once it starts: declare the exchange, then send events (again and again)."""
    from evtools.dispatcher import EventDispatcher
    with Connection(amqp_url) as connection:
        Exchange("celeryev", type="topic")(connection.default_channel).declare()
        with EventDispatcher(connection, hostname="w1@late") as dispatcher:
            while not done.wait(0.3):
                dispatcher.send("task-received", uuid=task_id, name="late.add", args="(1, 1)",
                                kwargs="{}", retries=0)
                dispatcher.send("task-succeeded", uuid=task_id, result="2", runtime=0.01)


def test_a_least_privileged_user_waits_for_the_exchange_then_consumes(
        amqp_url, limited_amqp_url, tmp_path):
    with Connection(amqp_url) as connection:  # no worker has declared the exchange yet
        Exchange("celeryev", type="topic")(connection.default_channel).delete()
    shots = tmp_path / "shots.jsonl"
    dump = EvtoolsProcess("events", "--dump", "-b", limited_amqp_url)
    camera = EvtoolsProcess("events", "-b", limited_amqp_url, "--camera",
                            "evtools.cameras.JSONLinesCamera", "--camera-opt", f"path={shots}",
                            "--frequency", "0.3")
    term = Terminal("events", "-b", limited_amqp_url, width=250)
    task_id, published = str(uuid.uuid4()), threading.Event()
    publisher = threading.Thread(target=_publish_until, args=(amqp_url, published, task_id))
    try:
        for process in (dump, camera):
            assert process.wait_for(WAITING, timeout=60), process.report()
        assert term.wait_text(WAITING[:60]), term.screen()
        # they keep looking for the exchange (every two seconds) and say it once
        assert not dump.wait_for("-> Connection lost", timeout=6), dump.report()
        assert sum(WAITING in line for line in dump.stderr) == 1, dump.report()
        assert sum(WAITING in line for line in camera.stderr) == 1, camera.report()

        publisher.start()  # a worker starts: events flow to all three
        assert dump.wait_for(f"task succeeded: late.add({task_id})", stream="stdout",
                             timeout=60), dump.report()
        assert dump.wait_for("-> exchange 'celeryev' declared by a worker: consuming events")
        assert term.wait_for(lambda s: task_id[:8] in s and "SUCCESS" in s, 60), term.screen()
        assert WAITING[:60] not in term.screen()
        assert wait_for(lambda: shots.exists() and task_id in shots.read_text(), 30), camera.report()
        for process in (dump, camera):
            assert process.terminate() == 0
            assert not any("Traceback" in line or "NOT_FOUND" in line or "ACCESS_REFUSED" in line
                           for line in process.stderr), process.report()
        term.keys("q")
        assert term.wait_text("EXIT=0", 15), term.screen()
    finally:
        published.set()
        if publisher.is_alive():
            publisher.join(10)
        for process in (dump, camera):
            process.kill()
        term.close()
