"""Faults: brokers killed and restarted under every mode, failing storage, stuck monitors."""

import json
import sqlite3
import subprocess

import pytest
from kombu import Connection

from evtools.dispatcher import EventDispatcher
from tests.helpers import wait_for
from tests.integration.cli_process import EvtoolsProcess
from tests.integration.terminal import Terminal


def publish(url, uuid, hostname="w1@fault"):
    with Connection(url) as connection, EventDispatcher(connection, hostname=hostname) as out:
        out.send("task-received", uuid=uuid, name="proj.add", args="()", kwargs="{}")
        out.send("task-succeeded", uuid=uuid, result="1", runtime=0.1)


def restart(broker, process, times=3):
    """Kill the broker several times; each time the process must say so and come back."""
    for n in range(times):
        broker.kill()
        lost = n + 1
        assert wait_for(lambda: sum("Connection lost" in l for l in process.stderr) >= lost,  # noqa: B023
                        30), process.report()
        broker.start()
        assert wait_for(lambda: sum("consuming events from" in l for l in process.stderr) > lost,  # noqa: B023
                        90), process.report()


@pytest.mark.parametrize("server", ["own_redis", "own_rabbit"])
def test_the_dump_survives_repeated_broker_kills(server, request):
    broker = request.getfixturevalue(server)
    dump = EvtoolsProcess("events", "-b", broker.url, "--dump", "-l", "info")
    dump.wait_ready()
    publish(broker.url, "before-kills")
    assert dump.wait_for("before-kills", stream="stdout"), dump.report()
    restart(broker, dump, times=3)
    publish(broker.url, "after-kills")
    assert dump.wait_for("after-kills", stream="stdout", timeout=30), dump.report()
    assert dump.terminate() == 0
    assert not any("Traceback" in line for line in dump.stderr), dump.report()


@pytest.mark.parametrize("server", ["own_redis", "own_rabbit"])
def test_the_camera_survives_broker_restarts_and_keeps_its_state(server, request, tmp_path):
    broker = request.getfixturevalue(server)
    database = tmp_path / "ev.sqlite"
    camera = EvtoolsProcess("events", "-b", broker.url, "--camera", "evtools.cameras.SQLiteCamera",
                            "--camera-opt", f"path={database}", "--frequency", "0.3", "-l", "info")
    camera.wait_ready()

    def stored():
        if not database.exists():
            return {}
        with sqlite3.connect(database) as db:
            return dict(db.execute("SELECT uuid, state FROM tasks").fetchall())
    publish(broker.url, "before")
    # a broker killed with events still in its output buffer loses them: wait until they landed
    assert wait_for(lambda: stored() == {"before": "SUCCESS"}, 30), camera.report()
    restart(broker, camera, times=2)
    publish(broker.url, "after")
    assert wait_for(lambda: stored() == {"before": "SUCCESS", "after": "SUCCESS"}, 30), \
        (stored(), camera.report())
    assert camera.process.poll() is None
    assert camera.terminate() == 0
    assert not any("Traceback" in line for line in camera.stderr), camera.report()


@pytest.mark.parametrize("server", ["own_redis", "own_rabbit"])
def test_the_monitor_survives_broker_restarts(server, request):
    broker = request.getfixturevalue(server)
    term = Terminal("events", "-b", broker.url)
    try:
        assert term.wait_text("events: "), term.screen()
        publish(broker.url, "first-task")
        assert term.wait_text("first-task"), term.screen()
        for _ in range(3):
            broker.kill()
            assert term.wait_text("reconnecting...", 30), term.screen()
            broker.start()
            assert term.wait_for(lambda s: "reconnecting" not in s, 90), term.screen()
        publish(broker.url, "second-task")
        assert term.wait_text("second-task", 30), term.screen()
        assert "first-task" in term.screen() and term.exited() is None
        term.keys("q")
        assert term.wait_text("EXIT=0", 15)
    finally:
        term.close()


def test_the_watchdog_ends_a_stuck_dump_with_status_3(own_redis):
    dump = EvtoolsProcess("events", "-b", own_redis.url, "--dump", "--watchdog", "3", "-l", "info")
    dump.wait_ready()
    publish(own_redis.url, "alive")
    assert dump.wait_for("alive", stream="stdout")
    own_redis.kill()  # the broker dies and nothing comes back
    assert dump.process.wait(30) == 3
    assert wait_for(lambda: any("no event for 3 seconds (--watchdog)" in l for l in dump.stderr), 5)
    assert not any("Traceback" in line for line in dump.stderr)


def test_a_camera_whose_storage_fails_keeps_running_and_retries(redis_url, tmp_path):
    camera = EvtoolsProcess("events", "-b", redis_url, "--camera", "evtools.cameras.SQLiteCamera",
                            "--camera-opt", f"path={tmp_path / 'ev.sqlite'}", "--frequency", "0.3",
                            "-l", "info")
    camera.wait_ready()
    blocker = sqlite3.connect(tmp_path / "ev.sqlite", timeout=0)
    blocker.execute("BEGIN EXCLUSIVE")  # the database cannot be written: every shutter fails
    publish(redis_url, "queued")
    assert wait_for(lambda: sum("scheduled call Polaroid.capture failed" in l
                                for l in camera.stderr) >= 2, 60), camera.report()
    assert camera.process.poll() is None
    blocker.rollback()
    blocker.close()

    def stored():
        with sqlite3.connect(tmp_path / "ev.sqlite") as db:
            return dict(db.execute("SELECT uuid, state FROM tasks").fetchall())
    assert wait_for(lambda: stored().get("queued") == "SUCCESS", 60), camera.report()
    assert camera.terminate() == 0


def test_a_jsonl_camera_on_a_full_disk_logs_and_recovers(redis_url, tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)],
                             capture_output=True, text=True)
    assert mounted.returncode == 0, f"could not mount a tiny tmpfs: {mounted.stderr}"
    try:
        snaps = small / "s.jsonl"
        camera = EvtoolsProcess("events", "-b", redis_url, "--camera",
                                "evtools.cameras.JSONLinesCamera", "--camera-opt", f"path={snaps}",
                                "--frequency", "0.2", "-l", "info")
        camera.wait_ready()
        filler = small / "filler"
        with open(filler, "wb") as fh:
            try:
                fh.write(b"x" * 1024 * 1024)
            except OSError:
                pass  # the disk is full now
        publish(redis_url, "while-full")
        assert wait_for(lambda: any("No space left on device" in l for l in camera.stderr), 30), \
            camera.report()
        assert camera.process.poll() is None
        filler.unlink()
        assert wait_for(lambda: any('"while-full"' in line for line in snaps.read_text().splitlines()),
                        30), camera.report()
        assert all(json.loads(line) for line in snaps.read_text().splitlines())
        assert camera.terminate() == 0
    finally:
        subprocess.run(["umount", "-l", str(small)], capture_output=True)


def test_the_watchdog_ends_a_camera_that_hears_nothing(own_redis, tmp_path):
    camera = EvtoolsProcess("events", "-b", own_redis.url, "--camera",
                            "evtools.cameras.JSONLinesCamera", "--camera-opt",
                            f"path={tmp_path / 's.jsonl'}", "--watchdog", "3", "-l", "info")
    camera.wait_ready()
    assert camera.process.wait(30) == 3
    assert any("no event for 3 seconds (--watchdog)" in line for line in camera.stderr) or \
        wait_for(lambda: any("--watchdog" in line for line in camera.stderr), 5), camera.report()
    assert (tmp_path / "s.jsonl").read_text().count("\n") >= 1  # the last picture was taken
