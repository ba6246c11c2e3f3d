"""The embedded default: ``evtools demo`` and the dump on ``filesystem://``, no server at all."""

import json
import os
import time

from tests.helpers import wait_for
from tests.integration.cli_process import EvtoolsProcess


def test_demo_events_show_in_the_dump_and_the_broker_folder_stays_bounded(tmp_path):
    env = {"EVTOOLS_FS_BROKER": str(tmp_path / "broker"), "EVTOOLS_BROKER_URL": "",
           "CELERY_BROKER_URL": "amqp://must-not-be-used//"}
    watchers = [EvtoolsProcess("events", "-b", "filesystem://", "--dump", "--json", "-l", "info",
                               "--queue-expires", "3", env=env) for _ in range(3)]
    for watcher in watchers:
        watcher.wait_ready()
    demo = EvtoolsProcess("demo", "--rate", "25", "--seed", "7", "--queue-expires", "3", env=env)
    keeper = watchers[0]

    def seen_types():
        return {json.loads(line)["type"] for line in list(keeper.stdout)}
    wanted = {"worker-online", "worker-heartbeat", "task-sent", "task-received", "task-started",
              "task-succeeded", "task-failed", "task-retried", "task-revoked"}
    assert wait_for(lambda: seen_types() >= wanted, timeout=60), \
        (seen_types(), demo.report(), keeper.report())
    records = [json.loads(line) for line in keeper.stdout]
    assert any(r.get("parent_id") and r["parent_id"] != r["uuid"] for r in records)
    assert len({r["hostname"] for r in records if r["type"] == "worker-online"}) >= 3

    # two monitors die without cleaning up: their queues must not keep collecting events
    for watcher in watchers[1:]:
        watcher.kill()
    table = tmp_path / "broker" / "control" / "celeryev.exchange"
    assert wait_for(lambda: len(json.loads(table.read_text())) == 1, timeout=30), \
        table.read_text()
    time.sleep(6)  # more than the message TTL, while the demo keeps publishing
    backlog = os.listdir(tmp_path / "broker" / "queue")
    assert len(backlog) < 200, len(backlog)
    assert keeper.process.poll() is None and demo.process.poll() is None
    assert demo.terminate() == 0
    assert keeper.wait_for("worker-offline", stream="stdout", timeout=15)
    assert keeper.terminate() == 0
    assert json.loads(table.read_text()) == []
    assert not any("Traceback" in line for line in demo.stderr + keeper.stderr), demo.report()
