"""Redis Sentinel for real: a master, a replica and a Sentinel; a real Celery worker; failovers."""

import base64
import json
import sqlite3
import time
import uuid

import pytest
import redis
from kombu import Connection

from evtools.dispatcher import EventDispatcher
from tests.helpers import wait_for
from tests.integration.cli_process import EvtoolsProcess
from tests.integration.terminal import Terminal

pytestmark = [pytest.mark.broker, pytest.mark.celery]


def sentinel_options(servers):
    return ["-b", servers.url, "--broker-transport-option", f"master_name={servers.master_name}"]


def worker_env(servers):
    return {"INTEROP_TRANSPORT_OPTIONS": json.dumps({"master_name": servers.master_name})}


@pytest.fixture
def sentinel_client(own_sentinel):
    from celery import Celery
    app = Celery("sentinel-client", broker=own_sentinel.url, set_as_current=False)
    app.conf.update(broker_transport_options={"master_name": own_sentinel.master_name},
                    task_send_sent_event=True, task_ignore_result=True,
                    broker_connection_retry_on_startup=True)
    yield app
    app.close()


@pytest.fixture
def terminal():
    opened = []

    def open_terminal(*args, **kwargs):
        opened.append(Terminal(*args, **kwargs))
        return opened[-1]
    yield open_terminal
    for term in opened:
        term.close()


class Dump:
    """The dump as a viewer: what it printed, and whether it said it lost the connection."""

    def __init__(self, servers, tmp_path, terminal):
        self.process = EvtoolsProcess("events", "--dump", *sentinel_options(servers), "-l", "info")
        self.process.wait_ready()

    def shows(self, text):
        return any(text in line for line in self.process.stdout)

    def noticed_the_loss(self):
        # the dump says "-> Connection lost, ..." on stderr; the camera logs it as a warning
        return (any("Connection lost, attempting reconnect" in line for line in self.process.stderr)
                and sum("consuming events from" in line for line in self.process.stderr) >= 2)

    def report(self):
        return self.process.report()

    def close(self):
        assert self.process.terminate() == 0
        assert not any("Traceback" in line for line in self.process.stderr), self.report()


class Camera(Dump):
    """The SQLite camera: tasks and workers as it photographed them."""

    def __init__(self, servers, tmp_path, terminal):
        self.database = tmp_path / "ev.sqlite"
        self.process = EvtoolsProcess("events", *sentinel_options(servers), "--camera",
                                      "evtools.cameras.SQLiteCamera", "--camera-opt",
                                      f"path={self.database}", "--frequency", "0.3", "-l", "info")
        self.process.wait_ready()

    def shows(self, text):
        if not self.database.exists():
            return False
        with sqlite3.connect(self.database) as db:
            rows = db.execute("SELECT uuid FROM tasks WHERE state = 'SUCCESS' "
                              "UNION SELECT hostname FROM workers").fetchall()
        return any(text == row[0] for row in rows)


class Monitor:
    """The curses monitor in a tmux pane."""

    def __init__(self, servers, tmp_path, terminal):
        self.term = terminal("events", *sentinel_options(servers), width=160)
        assert self.term.wait_text("events: "), self.term.screen()

    def shows(self, text):
        return text in self.term.screen()

    def noticed_the_loss(self):
        return "reconnected 1x" in self.term.screen()

    def report(self):
        return self.term.screen()

    def close(self):
        self.term.keys("q")
        assert self.term.wait_text("EXIT=0", 15), self.term.screen()


@pytest.mark.parametrize("viewer", [Dump, Monitor, Camera], ids=["dump", "monitor", "camera"])
def test_a_real_worker_is_followed_through_a_sentinel_failover(viewer, own_sentinel, celery_worker,
                                                               sentinel_client, tmp_path,
                                                               terminal):
    view = viewer(own_sentinel, tmp_path, terminal)
    hostname = f"w1@sentinel-{viewer.__name__.lower()}"
    worker = celery_worker(own_sentinel.url, hostname=hostname, env=worker_env(own_sentinel))
    assert wait_for(lambda: view.shows(hostname), timeout=90), (view.report(), worker.log_tail())
    before = sentinel_client.send_task("interop_tasks.add", args=(1, 2)).id
    assert wait_for(lambda: view.shows(before), timeout=60), view.report()

    old_master = own_sentinel.master.port
    assert own_sentinel.failover() == own_sentinel.replica.port != old_master
    assert wait_for(view.noticed_the_loss, timeout=60), view.report()

    after = sentinel_client.send_task("interop_tasks.add", args=(3, 4)).id
    assert wait_for(lambda: view.shows(after), timeout=90), (view.report(), worker.log_tail())
    view.close()


def envelope_on_the_wire(servers):
    """What kombu (this version) publishes for one event through Sentinel: (channel, bytes)."""
    master = redis.Redis(port=servers.master.port)
    listener = master.pubsub()
    listener.psubscribe("*celeryev*")
    assert wait_for(lambda: listener.get_message(timeout=0.1) is not None, timeout=10)
    with Connection(servers.url, transport_options={"master_name": servers.master_name}) as conn, \
            EventDispatcher(conn, hostname="new@prefix") as out:
        out.send("worker-heartbeat", freq=2.0)
    message = None
    deadline = time.monotonic() + 10
    while message is None and time.monotonic() < deadline:
        message = listener.get_message(timeout=0.5)
    listener.close()
    assert message is not None and message["type"] == "pmessage"
    return message["channel"].decode(), message["data"]


def test_the_monitor_hears_workers_on_both_sides_of_kombus_fanout_prefix_change(own_sentinel):
    # kombu >= 5.4 publishes Sentinel fanout on "/0.celeryev/..." (the db number filled in);
    # kombu < 5.4 never filled it in and publishes on the literal "/{db}.celeryev/...".
    dump = EvtoolsProcess("events", "--dump", *sentinel_options(own_sentinel), "-l", "info")
    dump.wait_ready()
    channel, data = envelope_on_the_wire(own_sentinel)
    assert channel == "/0.celeryev/worker.heartbeat"
    assert dump.wait_for("new@prefix", stream="stdout"), dump.report()

    # the same envelope as an old worker sends it: old prefix, its own hostname and tag
    message = json.loads(data)
    body = json.loads(base64.b64decode(message["body"]))
    body["hostname"] = "old@prefix"
    message["body"] = base64.b64encode(json.dumps(body).encode()).decode()
    message["properties"]["delivery_tag"] = str(uuid.uuid4())
    master = redis.Redis(port=own_sentinel.master.port)
    assert master.publish("/{db}.celeryev/worker.heartbeat", json.dumps(message)) == 1
    assert dump.wait_for("old@prefix", stream="stdout"), dump.report()
    # a message seen on both prefixes (a compat publisher) is printed once
    assert master.publish("/{db}.celeryev/worker.heartbeat", json.dumps(message)) == 1
    time.sleep(1)
    assert sum("old@prefix" in line for line in dump.stdout) == 1, dump.report()
    assert dump.terminate() == 0
