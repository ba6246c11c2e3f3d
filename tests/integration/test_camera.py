"""Camera mode for real: a real daemon, real brokers, a real Celery worker."""

import json
import os
import shutil
import signal
import sqlite3
import tempfile
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kombu import Connection

from evtools.dispatcher import EventDispatcher
from tests.helpers import wait_for
from tests.integration.cli_process import EvtoolsProcess

REPO = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=str(REPO))


def evtools(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "evtools", *args], capture_output=True,
                          text=True, timeout=90, env=ENV, **kwargs)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().split(") ")[1].split()[0] != "Z"


def proc_status(pid):
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().split(") ")[1].split()
    return {"ppid": int(fields[1]), "sid": int(fields[3])}


def stop_daemon(pidfile):
    if pidfile.exists() and pidfile.read_text().strip():
        pid = int(pidfile.read_text())
        if alive(pid):
            os.kill(pid, signal.SIGTERM)
            assert wait_for(lambda: not alive(pid), timeout=30)


def tasks_in(database):
    with sqlite3.connect(database) as db:
        return dict(db.execute("SELECT uuid, state FROM tasks").fetchall())


def publish(url, *uuids, hostname="w1@cam"):
    with Connection(url) as connection, EventDispatcher(connection, hostname=hostname) as out:
        out.send("worker-heartbeat", freq=2.0)
        for uuid in uuids:
            out.send("task-received", uuid=uuid, name="proj.add", args="()", kwargs="{}")
            out.send("task-succeeded", uuid=uuid, result="1", runtime=0.1)


def test_detach_runs_a_real_daemon_and_stops_cleanly(redis_url, tmp_path):
    pidfile, logfile, database = tmp_path / "cam.pid", tmp_path / "cam.log", tmp_path / "ev.sqlite"
    args = ["events", "-b", redis_url, "--camera", "evtools.cameras.SQLiteCamera",
            "--camera-opt", f"path={database}", "--frequency", "3600", "--detach",
            "--pidfile", str(pidfile), "--logfile", str(logfile), "--workdir", str(tmp_path),
            "--umask", "027", "-l", "info"]
    started = evtools(*args)
    try:
        assert started.returncode == 0, started.stderr
        pid = int(pidfile.read_text())
        assert alive(pid)
        status = proc_status(pid)
        assert status["ppid"] != os.getpid() and pid not in (os.getpid(),)
        assert status["sid"] != pid  # not a session leader: it cannot reacquire a terminal
        title = subprocess.run(["ps", "-o", "args=", "-p", str(pid)], capture_output=True,
                               text=True).stdout
        assert title.startswith("evtools events:cam -b "), title
        assert os.readlink(f"/proc/{pid}/cwd") == str(tmp_path)
        assert database.stat().st_mode & 0o777 == 0o640  # 0o666 under umask 027

        second = evtools(*args)
        assert second.returncode == 1
        assert second.stderr.strip() == (f"evtools: already running: pidfile {pidfile} is held "
                                         f"by pid {pid}")

        assert wait_for(lambda: "consuming events from" in logfile.read_text(), timeout=30)
        publish(redis_url, "final-1", "final-2")
        time.sleep(1)  # the frequency is an hour: only the final picture can record them
        os.kill(pid, signal.SIGTERM)
        assert wait_for(lambda: not alive(pid), timeout=30)
        assert not pidfile.exists()
        assert tasks_in(database) == {"final-1": "SUCCESS", "final-2": "SUCCESS"}
        log = logfile.read_text()
        assert "-> evcam: Taking snapshots with evtools.cameras.SQLiteCamera (every 3600.0 secs.)" in log
        assert "Traceback" not in log
    finally:
        stop_daemon(pidfile)


def test_a_stale_pidfile_left_by_sigkill_is_reclaimed(redis_url, tmp_path):
    pidfile, logfile = tmp_path / "cam.pid", tmp_path / "cam.log"
    args = ["events", "-b", redis_url, "--camera", "evtools.cameras.JSONLinesCamera",
            "--camera-opt", f"path={tmp_path / 's.jsonl'}", "--detach", "--pidfile", str(pidfile),
            "--logfile", str(logfile)]
    try:
        assert evtools(*args).returncode == 0
        first = int(pidfile.read_text())
        os.kill(first, signal.SIGKILL)
        assert wait_for(lambda: not alive(first), timeout=10)
        assert pidfile.read_text().strip() == str(first)  # left behind
        assert evtools(*args).returncode == 0
        second = int(pidfile.read_text())
        assert second != first and alive(second)
        assert wait_for(lambda: f"reclaimed stale pidfile {pidfile} (pid {first} was not running)"
                        in logfile.read_text(), timeout=10)
    finally:
        stop_daemon(pidfile)


def test_privileges_are_dropped_to_nobody(redis_url):
    assert os.geteuid() == 0, "this test runs as root, as CI does"
    home = Path(tempfile.mkdtemp(prefix="evtools-nobody-"))  # pytest's tmp_path is root-only
    home.chmod(0o777)
    pidfile, logfile = home / "cam.pid", home / "cam.log"
    result = evtools("events", "-b", redis_url, "--camera", "evtools.cameras.JSONLinesCamera",
                     "--camera-opt", f"path={home / 's.jsonl'}", "--detach", "--uid", "nobody",
                     "--gid", "nogroup", "--pidfile", str(pidfile), "--logfile", str(logfile),
                     "--workdir", str(home))
    try:
        assert result.returncode == 0, result.stderr
        pid = int(pidfile.read_text())
        with open(f"/proc/{pid}/status") as fh:
            ids = {line.split(":")[0]: line.split()[1:] for line in fh if line[:3] in ("Uid", "Gid")}
        assert ids["Uid"] == ["65534"] * 4 and ids["Gid"] == ["65534"] * 4
        assert wait_for(lambda: (home / "s.jsonl").exists() and
                        (home / "s.jsonl").stat().st_uid == 65534, timeout=10)
        assert pidfile.stat().st_uid == 65534 and logfile.stat().st_uid == 65534
    finally:
        stop_daemon(pidfile)
        assert not pidfile.exists()
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.parametrize("args, code, message", [
    (["--camera", "no_such_module_x.Cam"], 2, "cannot import camera module 'no_such_module_x'"),
    (["--camera", "tests.integration.cameras_for_tests.NotACamera"], 2, "is not a camera"),
    (["--camera", "evtools.cameras.JSONLinesCamera"], 2, "needs a file"),
    (["--camera", "evtools.cameras.JSONLinesCamera", "--camera-opt", "path=/x",
      "--logfile", "/proc/forbidden/cam.log"], 1, "/proc/forbidden/cam.log"),
])
def test_a_daemon_that_cannot_start_makes_the_command_fail(redis_url, tmp_path, args, code,
                                                           message):
    pidfile = tmp_path / "cam.pid"
    result = evtools("events", "-b", redis_url, *args, "--detach", "--pidfile", str(pidfile))
    assert result.returncode == code, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not pidfile.exists() or not pidfile.read_text()


def test_the_sqlite_camera_records_a_real_workers_tasks(broker_url, celery_worker, celery_client,
                                                        tmp_path):
    database = tmp_path / "ev.sqlite"
    camera = EvtoolsProcess("events", "-b", broker_url, "--camera", "evtools.cameras.SQLiteCamera",
                            "--camera-opt", f"path={database}", "--frequency", "0.5", "-l", "info")
    camera.wait_ready()
    worker = celery_worker(broker_url, hostname="w1@sqlite")
    assert wait_for(lambda: database.exists() and "w1@sqlite" in dict(
        sqlite3.connect(database).execute("SELECT hostname, alive FROM workers").fetchall()),
        timeout=90), worker.log_tail()
    ok = celery_client.send_task("interop_tasks.add", args=(1, 1)).id
    bad = celery_client.send_task("interop_tasks.fail").id
    assert wait_for(lambda: tasks_in(database).get(ok) == "SUCCESS" and
                    tasks_in(database).get(bad) == "FAILURE", timeout=60), camera.report()
    assert camera.terminate() == 0
    with sqlite3.connect(database) as db:
        row = db.execute("SELECT name, result, worker FROM tasks WHERE uuid = ?", (ok,)).fetchone()
    assert row == ("interop_tasks.add", "2", "w1@sqlite")


def test_maxrate_caps_the_pictures(redis_url, tmp_path):
    snaps = tmp_path / "s.jsonl"
    camera = EvtoolsProcess("events", "-b", redis_url, "--camera", "evtools.cameras.JSONLinesCamera",
                            "--camera-opt", f"path={snaps}", "--frequency", "1", "--maxrate", "6/m",
                            "-l", "info")
    camera.wait_ready()
    time.sleep(13)
    assert camera.terminate() == 0
    pictures = snaps.read_text().splitlines()
    # a full bucket allows one at once, then one every 10 s: 2 in 13 s (3 with the final one)
    assert 2 <= len(pictures) <= 3, len(pictures)
    assert all(json.loads(line)["time"] for line in pictures)


def test_a_camera_failing_every_time_keeps_running_and_logs_each_failure(redis_url):
    camera = EvtoolsProcess("events", "-b", redis_url, "--camera",
                            "tests.integration.cameras_for_tests.BrokenCamera", "--frequency", "0.2",
                            "-l", "info", env={"PYTHONPATH": str(REPO)})
    camera.wait_ready()
    assert wait_for(lambda: sum("scheduled call Polaroid.capture failed" in line
                                for line in camera.stderr) >= 5, timeout=20), camera.report()
    assert camera.process.poll() is None
    assert camera.terminate() == 0
    failures = [line for line in camera.stderr if "scheduled call" in line and "failed" in line]
    assert len(failures) >= 5


def test_sighup_reopens_the_log_and_the_jsonl_file_after_logrotate(redis_url, tmp_path):
    pidfile, logfile, snaps = tmp_path / "cam.pid", tmp_path / "cam.log", tmp_path / "s.jsonl"
    started = evtools("events", "-b", redis_url, "--camera", "evtools.cameras.JSONLinesCamera",
                      "--camera-opt", f"path={snaps}", "--frequency", "0.2", "--detach",
                      "--pidfile", str(pidfile), "--logfile", str(logfile), "-l", "info")
    try:
        assert started.returncode == 0, started.stderr
        pid = int(pidfile.read_text())
        assert wait_for(lambda: snaps.exists() and snaps.read_text().count("\n") >= 2, 30)
        os.rename(snaps, tmp_path / "s.jsonl.1")  # what logrotate does
        os.rename(logfile, tmp_path / "cam.log.1")
        os.kill(pid, signal.SIGHUP)
        assert wait_for(lambda: snaps.exists() and snaps.read_text().count("\n") >= 2, 30)
        publish(redis_url, "after-rotate")
        assert wait_for(lambda: '"after-rotate"' in snaps.read_text(), 30)
        assert alive(pid)
        os.kill(pid, signal.SIGTERM)
        assert wait_for(lambda: not alive(pid), 30)
        assert all(json.loads(line) for line in (tmp_path / "s.jsonl.1").read_text().splitlines())
    finally:
        stop_daemon(pidfile)


EVCAM_SCRIPT = """
import sys
from celery import Celery
from evtools.snapshot import evcam
from evtools.timer import Timer
url, out, logfile, pidfile = sys.argv[1:]
app = Celery("witness-app", broker=url, set_as_current=False)
app.conf.event_exchange = "camev"
sys.exit(evcam("tests.integration.cameras_for_tests.WitnessCamera", freq=0.2, loglevel="INFO",
               logfile=logfile, pidfile=pidfile, timer=Timer(name="the-given-timer"), app=app,
               out=out))
"""


def test_evcam_honours_every_argument_as_celerys_does(redis_url, tmp_path):
    from evtools.daemon import PidfileLocked
    from evtools.snapshot import evcam
    out, logfile, pidfile = tmp_path / "seen.json", tmp_path / "cam.log", tmp_path / "cam.pid"
    process = subprocess.Popen([sys.executable, "-c", EVCAM_SCRIPT, redis_url, str(out),
                                str(logfile), str(pidfile)], env=ENV, cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: pidfile.exists() and pidfile.read_text().strip() == str(process.pid),
                        timeout=30)
        with pytest.raises(PidfileLocked, match=f"held by pid {process.pid}"):
            evcam("tests.integration.cameras_for_tests.WitnessCamera", pidfile=str(pidfile))

        def seen():
            publish_on(redis_url, "camev", "on-the-app-exchange")
            publish(redis_url, "on-the-default-exchange")
            return out.exists() and "on-the-app-exchange" in out.read_text()
        assert wait_for(seen, timeout=30)
        picture = json.loads(out.read_text())
        assert picture["tasks"] == ["on-the-app-exchange"]  # app.conf.event_exchange honoured
        assert picture["timer"] == "the-given-timer" and picture["app"] == "witness-app"
        assert picture["freq"] == 0.2
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
        assert process.returncode == 0, stderr
        assert "-> evcam: Taking snapshots with tests.integration.cameras_for_tests.WitnessCamera" \
            " (every 0.2 secs.)" in stdout
        assert not pidfile.exists()
        log = logfile.read_text()
        assert "tests.witness: picture of 1 tasks" in log
        assert "a debug line" not in log and "Traceback" not in log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def publish_on(url, exchange, *uuids):
    from evtools.config import Settings
    settings = Settings(broker_url=url, event_exchange=exchange)
    with Connection(url) as connection, \
            EventDispatcher(connection, hostname="w1@cam", settings=settings) as out:
        for uuid in uuids:
            out.send("task-received", uuid=uuid, name="proj.add", args="()", kwargs="{}")
