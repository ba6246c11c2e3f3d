"""The cameras that ship with evtools: JSON lines and SQLite."""

import json
import os
import sqlite3
import time

import pytest

from evtools.cameras import JSONLinesCamera, SQLiteCamera
from evtools.cameras.sqlite import SCHEMA_VERSION
from evtools.errors import ConfigurationError
from evtools.snapshot import camera_options
from evtools.state import State

NOW = time.time() - 100  # task events from the past, heartbeats now


def feed(state, subject, uuid, clock, **fields):
    state.event(dict(type=f"task-{subject}", uuid=uuid, hostname="w1@h", clock=clock,
                     timestamp=NOW + clock, local_received=NOW + clock, **fields))


def heartbeat(state):
    state.event({"type": "worker-heartbeat", "hostname": "w1@h", "clock": 1, "timestamp": time.time(),
                 "local_received": time.time(), "freq": 2.0, "active": 1, "processed": 3,
                 "loadavg": [0.1, 0.2, 0.3], "sw_ident": "py-celery"})


def test_jsonlines_writes_one_document_per_picture_with_changed_tasks_only(tmp_path):
    state = State()
    camera = JSONLinesCamera(state, path=str(tmp_path / "snaps.jsonl"))
    heartbeat(state)
    feed(state, "received", "a", 1, name="add")
    feed(state, "received", "b", 2, name="mul")
    camera.capture()
    feed(state, "succeeded", "a", 3, result="3")
    camera.capture()
    camera.capture()
    camera.close()
    documents = [json.loads(line) for line in (tmp_path / "snaps.jsonl").read_text().splitlines()]
    assert [sorted(t["uuid"] for t in d["tasks"]) for d in documents] == [["a", "b"], ["a"], []]
    assert documents[1]["tasks"][0]["state"] == "SUCCESS"
    worker = documents[0]["workers"][0]
    assert worker["hostname"] == "w1@h" and worker["alive"] is True
    assert 0 <= worker["heartbeat_age"] < 5 and worker["loadavg"] == [0.1, 0.2, 0.3]


def test_jsonlines_reopens_after_logrotate(tmp_path):
    state = State()
    path = tmp_path / "snaps.jsonl"
    camera = JSONLinesCamera(state, path=str(path))
    camera.capture()
    os.rename(path, tmp_path / "snaps.jsonl.1")
    camera.reopen()
    camera.capture()
    camera.close()
    assert len(path.read_text().splitlines()) == 1
    assert len((tmp_path / "snaps.jsonl.1").read_text().splitlines()) == 1


def test_jsonlines_needs_a_path_and_takes_it_from_the_environment(tmp_path):
    with pytest.raises(ConfigurationError, match="needs a file"):
        JSONLinesCamera(State())
    options = camera_options(JSONLinesCamera, (), {"EVTOOLS_CAMERA_PATH": str(tmp_path / "e")})
    assert options == {"path": str(tmp_path / "e")}
    assert camera_options(JSONLinesCamera, ("path=/x",), {"EVTOOLS_CAMERA_PATH": "/y"}) == \
        {"path": "/x"}
    with pytest.raises(ConfigurationError, match="does not take it"):
        camera_options(JSONLinesCamera, ("colour=red",), {})
    with pytest.raises(ConfigurationError, match="expected KEY=VALUE"):
        camera_options(JSONLinesCamera, ("path",), {})


def rows(path, sql):
    with sqlite3.connect(path) as db:
        return db.execute(sql).fetchall()


def test_sqlite_upserts_workers_and_tasks_in_wal_mode(tmp_path):
    path = str(tmp_path / "ev.sqlite")
    state = State()
    camera = SQLiteCamera(state, path=path)
    heartbeat(state)
    feed(state, "received", "a", 1, name="add", args="(1, 2)")
    camera.capture()
    feed(state, "succeeded", "a", 2, result="3", runtime=0.5)
    feed(state, "failed", "b", 3, exception="ValueError()")
    camera.capture()
    camera.close()
    assert rows(path, "PRAGMA journal_mode") == [("wal",)]
    assert rows(path, "SELECT value FROM meta WHERE key='schema_version'") == [(str(SCHEMA_VERSION),)]
    assert rows(path, "SELECT uuid, name, state, result, worker, args FROM tasks ORDER BY uuid") == [
        ("a", "add", "SUCCESS", "3", "w1@h", "(1, 2)"), ("b", None, "FAILURE", None, "w1@h", None)]
    assert rows(path, "SELECT hostname, alive, processed, loadavg FROM workers") == [
        ("w1@h", 1, 3, "[0.1, 0.2, 0.3]")]


def test_sqlite_cleanup_deletes_finished_tasks_past_retention(tmp_path):
    path = str(tmp_path / "ev.sqlite")
    state = State()
    camera = SQLiteCamera(state, path=path, retention="60")
    state.event(dict(type="task-succeeded", uuid="old", hostname="w", clock=1,
                     timestamp=time.time() - 3600, local_received=time.time()))
    state.event(dict(type="task-started", uuid="old-running", hostname="w", clock=2,
                     timestamp=time.time() - 3600, local_received=time.time()))
    state.event(dict(type="task-succeeded", uuid="new", hostname="w", clock=3,
                     timestamp=time.time(), local_received=time.time()))
    camera.capture()
    camera.cleanup()
    camera.close()
    assert sorted(r[0] for r in rows(path, "SELECT uuid FROM tasks")) == ["new", "old-running"]


def test_sqlite_failure_is_retried_with_the_same_changes(tmp_path):
    path = tmp_path / "ev.sqlite"
    state = State()
    camera = SQLiteCamera(state, path=str(path))
    feed(state, "received", "a", 1, name="add")
    blocker = sqlite3.connect(path, timeout=0)
    blocker.execute("BEGIN EXCLUSIVE")
    camera.db.execute("PRAGMA busy_timeout = 0")
    with pytest.raises(sqlite3.OperationalError):
        camera.on_shutter(state)
    blocker.rollback()
    blocker.close()
    camera.on_shutter(state)
    camera.close()
    assert rows(str(path), "SELECT uuid FROM tasks") == [("a",)]


def test_sqlite_refuses_a_bad_path_or_retention(tmp_path):
    with pytest.raises(ConfigurationError, match="cannot use"):
        SQLiteCamera(State(), path=str(tmp_path / "no" / "such" / "dir.sqlite"))
    with pytest.raises(ConfigurationError, match="retention"):
        SQLiteCamera(State(), path=str(tmp_path / "x.sqlite"), retention="a week")
