"""The dispatcher sends what Celery workers send, the way they send it."""

import json
import os
import socket
import threading

import pytest
from kombu import Connection, Consumer, Queue
from kombu.exceptions import OperationalError

from evtools.dispatcher import EventDispatcher, anon_nodename
from evtools.errors import ConfigurationError
from evtools.event import get_exchange


class Tap:
    """Collect raw messages published to the event exchange on the memory transport."""

    def __init__(self, exchange="celeryev"):
        self.connection = Connection("memory://")
        self.queue = Queue(f"tap-{id(self)}", exchange=get_exchange(self.connection, name=exchange),
                           routing_key="#")
        self.messages = []
        self.consumer = Consumer(self.connection.default_channel, queues=[self.queue],
                                 on_message=self.messages.append, no_ack=True)
        self.consumer.consume()

    def drain(self):
        while True:
            try:
                self.connection.drain_events(timeout=0.1)
            except TimeoutError:
                return [(m.delivery_info["routing_key"], json.loads(m.body), m.headers,
                         m.content_type) for m in self.messages]


def test_anon_nodename_is_gen_pid_at_host():
    assert anon_nodename() == f"gen{os.getpid()}@{socket.gethostname()}"


def test_send_publishes_one_json_event_with_celerys_fields():
    tap = Tap()
    with EventDispatcher(Connection("memory://"), hostname="w1@h") as dispatcher:
        dispatcher.send("task-succeeded", uuid="u", result="3", runtime=0.5)
    [(routing_key, body, headers, content_type)] = tap.drain()
    assert routing_key == "task.succeeded" and content_type == "application/json"
    assert headers == {"hostname": "w1@h"}
    assert list(body) == ["hostname", "utcoffset", "pid", "clock", "uuid", "result", "runtime",
                          "timestamp", "type"]
    assert (body["hostname"], body["pid"], body["clock"], body["type"]) == \
        ("w1@h", os.getpid(), 1, "task-succeeded")


def test_dispatcher_message_matches_celerys_for_the_same_event():
    from celery import Celery
    app = Celery(broker="memory://", set_as_current=False)
    tap = Tap()
    fields = dict(uuid="u", name="add", args="(1,)", kwargs="{}", timestamp=1.0)
    with app.events.Dispatcher(Connection("memory://"), hostname="h@x") as theirs:
        theirs.send("task-received", **fields)
    with EventDispatcher(Connection("memory://"), hostname="h@x") as ours:
        ours.send("task-received", **fields)
    (rk1, body1, headers1, ct1), (rk2, body2, headers2, ct2) = tap.drain()
    assert (rk1, headers1, ct1) == (rk2, headers2, ct2)
    assert list(body1) == list(body2)
    assert {k: v for k, v in body1.items() if k != "clock"} == \
        {k: v for k, v in body2.items() if k != "clock"}


def test_clock_counts_up_and_blind_events_carry_none():
    tap = Tap()
    with EventDispatcher(Connection("memory://")) as dispatcher:
        dispatcher.send("worker-heartbeat")
        dispatcher.send("worker-heartbeat")
        dispatcher.send("worker-heartbeat", blind=True)
    assert [body["clock"] for _, body, _, _ in tap.drain()] == [1, 2, None]


def test_groups_filter_what_is_sent():
    tap = Tap()
    with EventDispatcher(Connection("memory://"), groups=["worker"]) as dispatcher:
        dispatcher.send("task-sent", uuid="u")
        dispatcher.send("worker-online")
    assert [body["type"] for _, body, _, _ in tap.drain()] == ["worker-online"]


def test_buffer_group_publishes_lists_on_multi():
    tap = Tap()
    buffered = []
    with EventDispatcher(Connection("memory://"), buffer_group=["task"], buffer_limit=2,
                         on_send_buffered=lambda: buffered.append(1)) as dispatcher:
        dispatcher.send("task-received", uuid="a")
        dispatcher.send("task-started", uuid="a")  # reaches the limit: published
        dispatcher.send("task-succeeded", uuid="a")
        dispatcher.send("worker-heartbeat")
        dispatcher.flush()
    messages = tap.drain()
    assert [(rk, [e["type"] for e in body] if isinstance(body, list) else body["type"])
            for rk, body, _, _ in messages] == [
        ("task.multi", ["task-received", "task-started"]),
        ("worker.heartbeat", "worker-heartbeat"),
        ("task.multi", ["task-succeeded"]),
    ]
    assert buffered == [1, 1]


def test_disabled_and_closed_dispatchers_send_nothing():
    tap = Tap()
    dispatcher = EventDispatcher(Connection("memory://"), enabled=False)
    dispatcher.send("worker-online")
    dispatcher.enable()
    dispatcher.send("worker-online")
    dispatcher.disable()
    dispatcher.send("worker-online")
    assert len(tap.drain()) == 1
    calls = []
    dispatcher.on_enabled.add(lambda: calls.append("on"))
    dispatcher.on_disabled.add(lambda: calls.append("off"))
    dispatcher.enable()
    dispatcher.disable()
    assert calls == ["on", "off"]


def test_events_are_kept_while_the_broker_is_unreachable():
    dead = Connection("amqp://guest:guest@127.0.0.1:1//", connect_timeout=0.2)
    dispatcher = EventDispatcher(dead, hostname="w@h")
    dispatcher.send("worker-online")
    dispatcher.send("task-sent", uuid="u")
    assert [routing_key for _, routing_key in dispatcher._outbound_buffer] == \
        ["worker.online", "task.sent"]
    strict = EventDispatcher(Connection("amqp://guest:guest@127.0.0.1:1//", connect_timeout=0.2),
                             buffer_while_offline=False)
    with pytest.raises(OperationalError):
        strict.send("worker-online")


def test_only_json_is_spoken():
    with pytest.raises(ConfigurationError):
        EventDispatcher(Connection("memory://"), serializer="pickle")


def test_send_is_safe_from_several_threads():
    tap = Tap()
    with EventDispatcher(Connection("memory://")) as dispatcher:
        threads = [threading.Thread(target=lambda: [dispatcher.send("worker-heartbeat")
                                                    for _ in range(50)]) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    clocks = sorted(body["clock"] for _, body, _, _ in tap.drain())
    assert clocks == list(range(1, 201))


def test_a_celery_apps_event_settings_are_honoured_as_celery_honours_them():
    from celery import Celery
    app = Celery(broker="memory://", set_as_current=False)
    app.conf.event_exchange = "appev"
    default_tap, app_tap = Tap(), Tap(exchange="appev")
    with app.events.Dispatcher(Connection("memory://"), hostname="h@x") as theirs:
        theirs.send("worker-online")
    with EventDispatcher(Connection("memory://"), hostname="h@x", app=app) as ours:
        ours.send("worker-online")
    assert ours.exchange.name == theirs.exchange.name == "appev"
    assert [body["type"] for _, body, _, _ in app_tap.drain()] == ["worker-online"] * 2
    assert default_tap.drain() == []


def test_an_apps_serializer_other_than_json_is_one_clear_error():
    from celery import Celery
    app = Celery(broker="memory://", set_as_current=False)
    app.conf.event_serializer = "pickle"
    with pytest.raises(ConfigurationError, match="'pickle' is not supported"):
        EventDispatcher(Connection("memory://"), app=app)


def test_without_a_connection_the_apps_broker_is_used():
    from celery import Celery
    app = Celery(broker="memory://from-app", set_as_current=False)
    dispatcher = EventDispatcher(app=app, enabled=False)
    assert dispatcher.connection.as_uri().startswith("memory://")
