"""The embedded broker stays bounded: stale queues are unbound, old messages deleted."""

import json
import os
import threading
import time
from pathlib import Path

import pytest
from kombu import Connection

from evtools.transport import fsbroker
from evtools.config import Settings
from evtools.dispatcher import EventDispatcher
from evtools.receiver import EventReceiver
from evtools.state import State
from tests.helpers import Capture, wait_for


def test_default_folder_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("EVTOOLS_FS_BROKER", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert fsbroker.default_folder() == tmp_path / "evtools" / "broker"
    monkeypatch.setenv("EVTOOLS_FS_BROKER", str(tmp_path / "x"))
    assert fsbroker.default_folder() == tmp_path / "x"


def test_events_cross_processes_through_the_folder(tmp_path):
    options = fsbroker.transport_options(tmp_path)
    state = State()
    with Connection("filesystem://", transport_options=options) as connection:
        capture = Capture(EventReceiver(connection, handlers={"*": state.event}),
                          wakeup=False).start()
        with Connection("filesystem://", transport_options=options) as out, \
                EventDispatcher(out, hostname="w@fs", buffer_group={"task"}) as dispatcher:
            dispatcher.send("task-received", uuid="u", name="n")
            dispatcher.send("task-succeeded", uuid="u")
            dispatcher.flush()
        assert wait_for(lambda: "u" in state.tasks and state.tasks["u"].state == "SUCCESS")
        capture.stop()


def bind_queue(folder, queue):
    table = folder / "control" / "celeryev.exchange"
    bindings = json.loads(table.read_text()) if table.exists() else []
    bindings.append(["#", "^.*?$", queue])
    table.write_text(json.dumps(bindings))
    return table


def test_sweep_unbinds_queues_whose_lease_went_stale(tmp_path):
    fsbroker.transport_options(tmp_path)
    bind_queue(tmp_path, "celeryev.dead")
    bind_queue(tmp_path, "celeryev.alive")
    (tmp_path / "leases" / "celeryev.dead").write_text("1")
    os.utime(tmp_path / "leases" / "celeryev.dead", (time.time() - 120, time.time() - 120))
    (tmp_path / "leases" / "celeryev.alive").write_text("2")
    for n, queue in enumerate(["celeryev.dead", "celeryev.alive"] * 3):
        (tmp_path / "queue" / f"{n}_x.{queue}.msg").write_text("{}")
    counts = fsbroker.sweep(tmp_path, ttl=5, expires=60)
    assert counts == {"queues": 1, "messages": 3}
    table = json.loads((tmp_path / "control" / "celeryev.exchange").read_text())
    assert [b[2] for b in table] == ["celeryev.alive"]
    assert sorted(os.listdir(tmp_path / "queue")) == [
        "1_x.celeryev.alive.msg", "3_x.celeryev.alive.msg", "5_x.celeryev.alive.msg"]


def test_sweep_deletes_messages_older_than_the_ttl(tmp_path):
    fsbroker.transport_options(tmp_path)
    old, new = tmp_path / "queue" / "1_a.q.msg", tmp_path / "queue" / "2_b.q.msg"
    old.write_text("{}")
    new.write_text("{}")
    os.utime(old, (time.time() - 30, time.time() - 30))
    assert fsbroker.sweep(tmp_path, ttl=5, expires=60)["messages"] == 1
    assert not old.exists() and new.exists()


def test_a_lease_is_kept_fresh_and_removed_on_exit(tmp_path):
    lease = fsbroker.Lease("celeryev.q", tmp_path, interval=0.05)
    with lease:
        os.utime(lease.path, (time.time() - 100, time.time() - 100))
        assert wait_for(lambda: time.time() - lease.path.stat().st_mtime < 5, timeout=3)
        assert lease.path.read_text() == str(os.getpid())
    assert not lease.path.exists()


@pytest.mark.parametrize("keys", [("#",), ("task.failed", "task.multi")], ids=["all", "pushdown"])
def test_live_source_unbinds_its_queue_when_it_stops(tmp_path, monkeypatch, keys):
    """On every kombu version evtools admits (before 5.4 kombu left the binding in place)."""
    monkeypatch.setenv("EVTOOLS_FS_BROKER", str(tmp_path))
    from evtools.source import LiveSource
    source = LiveSource(Settings(broker_url="filesystem://"), wakeup=False, routing_keys=keys)
    thread = threading.Thread(target=source.run, args=(lambda e: None,), daemon=True)
    thread.start()
    assert source.connected.wait(10)
    table = tmp_path / "control" / "celeryev.exchange"
    assert sorted(b[0] for b in json.loads(table.read_text())) == sorted(keys)
    assert len(os.listdir(tmp_path / "leases")) == 1
    source.stop()
    thread.join(10)
    assert not thread.is_alive()
    assert json.loads(table.read_text()) == [] and os.listdir(tmp_path / "leases") == []


def test_remove_queue_unbinds_it_everywhere_and_deletes_its_messages(tmp_path):
    fsbroker.transport_options(tmp_path)
    table = bind_queue(tmp_path, "celeryev.gone")
    bind_queue(tmp_path, "celeryev.kept")
    other = tmp_path / "control" / "other.exchange"
    other.write_text(json.dumps([["k", "", "celeryev.gone"]]))
    for name in ("1_a.celeryev.gone.msg", "2_b.celeryev.kept.msg"):
        (tmp_path / "queue" / name).write_text("{}")
    fsbroker.remove_queue("celeryev.gone", tmp_path)
    assert [b[2] for b in json.loads(table.read_text())] == ["celeryev.kept"]
    assert json.loads(other.read_text()) == []
    assert os.listdir(tmp_path / "queue") == ["2_b.celeryev.kept.msg"]


def test_a_live_consumer_unbound_by_mistake_binds_itself_again(tmp_path):
    fsbroker.transport_options(tmp_path)
    table = bind_queue(tmp_path, "celeryev.slow")
    with fsbroker.Lease("celeryev.slow", tmp_path, interval=0.05) as lease:
        # the lease can only restore a binding it has seen
        assert wait_for(lambda: lease._bindings, timeout=5)
        table.write_text("[]")  # a sweeper took it for dead
        assert wait_for(lambda: [b[2] for b in json.loads(table.read_text())] == ["celeryev.slow"],
                        timeout=5)


def test_a_young_lease_is_never_swept_whatever_the_expiry(tmp_path):
    fsbroker.transport_options(tmp_path)
    bind_queue(tmp_path, "celeryev.q")
    (tmp_path / "leases" / "celeryev.q").write_text("1")
    os.utime(tmp_path / "leases" / "celeryev.q", (time.time() - 5, time.time() - 5))
    assert fsbroker.sweep(tmp_path, ttl=5, expires=1)["queues"] == 0


@pytest.mark.parametrize("junk", [b"{}", b"[]", b"null", b'{"properties": "x"}', b'{"properties": {}}',
                                  b'{"properties": {"delivery_tag": "t", "delivery_info": 3}}',
                                  b"\xff", b"{"])
def test_a_message_file_that_is_not_a_kombu_message_is_skipped_with_a_warning(tmp_path, junk, caplog):
    import evtools
    options = fsbroker.transport_options(tmp_path)
    state = State()
    with evtools.connect("filesystem://", transport_options=options) as connection:
        receiver = EventReceiver(connection, handlers={"*": state.event})
        capture = Capture(receiver, wakeup=False).start()
        inbox = Path(options["data_folder_in"])
        assert wait_for(lambda: (tmp_path / "control" / "celeryev.exchange").exists())
        # read before the event below: names sort by time, and "0_" comes first
        (inbox / f"0_{0:020d}-junk.{receiver.queue.name}.msg").write_bytes(junk)
        with evtools.connect("filesystem://", transport_options=options) as out, \
                EventDispatcher(out, hostname="w@fs") as dispatcher:
            dispatcher.send("task-received", uuid="after", name="n")
        assert wait_for(lambda: "after" in state.tasks)
        capture.stop()
    assert not capture.errors
    assert any("skipping" in r.getMessage() and "-junk." in r.getMessage() for r in caplog.records)
