"""RabbitMQ least privilege: a user allowed only what evtools needs (tests/servers.py LIMITED_USER)."""

import json
import subprocess
import sys

import pytest
from kombu import Connection, Exchange

from tests.helpers import wait_for
from tests.integration.cli_process import EvtoolsProcess
from tests.integration.terminal import Terminal

pytestmark = [pytest.mark.broker, pytest.mark.celery]


@pytest.fixture
def guest_client(amqp_url):
    from celery import Celery
    app = Celery("perm-client", broker=amqp_url, set_as_current=False)
    app.conf.update(task_send_sent_event=True, task_ignore_result=True)
    yield app
    app.close()


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
