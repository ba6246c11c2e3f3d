"""``evtools events --dump`` against real brokers and a real Celery worker."""

import json
import re
import subprocess
import sys

import pytest
from kombu import Connection

from evtools.dispatcher import EventDispatcher
from tests.helpers import wait_for
from tests.integration.cli_process import EvtoolsProcess

LINE = re.compile(r"^\S+ \[\d{4}-\d\d-\d\d [\d:.]+\+00:00\] [a-z ]+")


def test_a_real_workers_events_come_out_of_the_dump(broker_url, celery_worker, celery_client,
                                                    tmp_path):
    recording = tmp_path / "live.jsonl"
    human = EvtoolsProcess("events", "--dump", "-b", broker_url, "-l", "info",
                           "--record", str(recording))
    as_json = EvtoolsProcess("events", "--dump", "--json", "-b", broker_url, "-l", "info")
    filtered = EvtoolsProcess("events", "--dump", "-b", broker_url, "-l", "info",
                              "-t", "task-succ*", "--task", "interop_tasks.add")
    failures = EvtoolsProcess("events", "--dump", "-b", broker_url, "-l", "info", "-t", "task-failed")
    dumps = (human, as_json, filtered, failures)
    for dump in dumps:
        dump.wait_ready()
    title = subprocess.run(["ps", "-o", "args=", "-p", str(human.pid)], capture_output=True,
                           text=True).stdout.strip()
    assert title.startswith("evtools events:dump --dump -b "), title
    worker = celery_worker(broker_url, hostname="w1@dump")
    assert human.wait_for("w1@dump", stream="stdout", timeout=90), worker.log_tail()
    added = celery_client.send_task("interop_tasks.add", args=(2, 3)).id
    failed = celery_client.send_task("interop_tasks.fail", args=("multi\nline",)).id
    assert human.wait_for("task failed", stream="stdout", timeout=60), human.report()
    assert human.wait_for(f"task succeeded: interop_tasks.add({added})", stream="stdout")
    assert worker.stop() == 0
    for dump in dumps:
        assert dump.wait_for("shutdown" if dump is not as_json else "worker-offline",
                             stream="stdout", timeout=30) or dump in (filtered, failures)
    assert [dump.terminate() for dump in dumps] == [0, 0, 0, 0]
    for dump in dumps:
        assert not any("Traceback" in line for line in dump.stderr), dump.report()

    assert all(LINE.match(line) for line in human.stdout), human.report()
    assert any(f"task received: interop_tasks.add({added}) args=(2, 3) kwargs={{}}" in line
               for line in human.stdout)
    [failure] = [line for line in human.stdout if f"task failed: interop_tasks.fail({failed})" in line]
    assert "traceback=Traceback (most recent call last):\\n  File " in failure

    records = [json.loads(line) for line in as_json.stdout]
    types = {record["type"] for record in records}
    assert types >= {"worker-online", "task-sent", "task-received",
                     "task-started", "task-succeeded", "task-failed", "worker-offline"}
    assert all("local_received" in record and "clock" in record for record in records)

    assert filtered.stdout and all("task succeeded: interop_tasks.add(" in line
                                   for line in filtered.stdout), filtered.report()

    # -t task-failed is pushed down to the broker, and prints what filtering everything would
    assert any("routing keys task.failed task.received task.sent task.multi" in line
               for line in failures.stderr), failures.report()

    def without_local_received(line):
        return re.sub(r"local_received=[\d.e+]+", "", line)
    assert [without_local_received(line) for line in failures.stdout] == \
        [without_local_received(line) for line in human.stdout if "] task failed: " in line]

    replayed = subprocess.run([sys.executable, "-m", "evtools", "events", "--replay",
                               str(recording), "--speed", "0", "--dump"],
                              capture_output=True, text=True, timeout=60)
    assert replayed.returncode == 0
    assert replayed.stdout.splitlines() == human.stdout

    json_recording = tmp_path / "json.jsonl"
    json_recording.write_text("\n".join(as_json.stdout) + "\n")
    from_json = subprocess.run([sys.executable, "-m", "evtools", "events", "--replay",
                                str(json_recording), "--speed", "0", "--dump"],
                               capture_output=True, text=True, timeout=60)
    assert [without_local_received(l) for l in from_json.stdout.splitlines()] == \
        [without_local_received(l) for l in human.stdout]


def test_a_closed_pipe_ends_the_dump_quietly_with_status_0(broker_url, celery_worker):
    worker = celery_worker(broker_url, hostname="w1@pipe")
    done = subprocess.run(["bash", "-o", "pipefail", "-c",
                           f"{sys.executable} -m evtools events --dump -b '{broker_url}' | head -1"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (done.stderr, worker.log_tail())
    assert len(done.stdout.splitlines()) == 1 and "Traceback" not in done.stderr
    assert "BrokenPipe" not in done.stderr


def publish(url, hostname, count):
    with Connection(url) as connection, EventDispatcher(connection, hostname=hostname) as out:
        for n in range(count):
            out.send("worker-heartbeat", freq=2.0, active=n)


@pytest.mark.parametrize("server", ["own_redis", "own_rabbit"])
def test_the_dump_reconnects_by_itself_when_the_broker_comes_back(server, request):
    broker = request.getfixturevalue(server)
    dump = EvtoolsProcess("events", "--dump", "-b", broker.url, "-l", "info")
    dump.wait_ready()
    publish(broker.url, "before@restart", 3)
    assert dump.wait_for("before@restart", stream="stdout"), dump.report()
    broker.stop()
    assert dump.wait_for("-> Connection lost, attempting reconnect", timeout=30), dump.report()
    broker.start()
    assert wait_for(lambda: sum("consuming events from" in l for l in dump.stderr) >= 2,
                    timeout=90), dump.report()
    publish(broker.url, "after@restart", 3)
    assert dump.wait_for("after@restart", stream="stdout", timeout=30), dump.report()
    assert dump.terminate() == 0
    assert not any("Traceback" in line for line in dump.stderr), dump.report()
