"""The receiver: Celery's clock and timestamp rules, JSON only, junk counted and survived."""

import json
import logging
import pickle
import socket
import time

import pytest
from kombu import Connection, Producer

import evtools
from evtools.dispatcher import EventDispatcher
from evtools.errors import ConfigurationError, MalformedEvent
from evtools.event import get_exchange
from evtools.receiver import EventReceiver, check_event, decode_body
from evtools.state import State
from evtools.tz import utcoffset
from tests.helpers import Capture


def memory_pair(**receiver_options):
    connection = Connection("memory://")
    return connection, EventReceiver(connection, **receiver_options)


def test_queue_is_named_and_configured_like_celerys():
    _, receiver = memory_pair(node_id="abc")
    queue = receiver.queue
    assert queue.name == "celeryev.abc" and queue.routing_key == "#"
    assert (queue.message_ttl, queue.expires, queue.exclusive, queue.auto_delete, queue.durable) == \
        (5.0, 60.0, True, True, False)
    assert queue.exchange.name == "celeryev"


def test_queue_options_are_configurable():
    _, receiver = memory_pair(queue_prefix="mon", queue_ttl=1.5, queue_expires=9,
                              queue_exclusive=False, queue_durable=True)
    queue = receiver.queue
    assert queue.name.startswith("mon.")
    assert (queue.message_ttl, queue.expires, queue.exclusive, queue.auto_delete, queue.durable) == \
        (1.5, 9, False, False, True)
    with pytest.raises(ConfigurationError):
        memory_pair(queue_exclusive=True, queue_durable=True)


@pytest.mark.celery
def test_the_queue_for_a_celery_app_is_the_queue_celery_declares():
    from celery import Celery
    app = Celery(broker="memory://", set_as_current=False)
    app.conf.update(event_queue_ttl=None, event_queue_expires=None, event_exchange="appev",
                    event_queue_prefix="apppfx", event_queue_exclusive=False,
                    event_queue_durable=True)

    def described(queue):
        return (queue.name, queue.exchange.name, queue.exchange.type, queue.routing_key,
                queue.message_ttl, queue.expires, queue.exclusive, queue.durable,
                queue.auto_delete)

    theirs = app.events.Receiver(app.connection_for_read(), node_id="n1").queue
    _, ours = memory_pair(app=app, node_id="n1")
    assert described(ours.queue) == described(theirs)
    assert (ours.queue.message_ttl, ours.queue.expires) == (None, None)


def test_only_json_may_be_accepted():
    memory_pair(accept=["json"])
    with pytest.raises(ConfigurationError):
        memory_pair(accept=["json", "pickle"])


@pytest.mark.celery
def test_clock_rules_match_celerys_receiver():
    from celery import Celery
    app = Celery(broker="memory://", set_as_current=False)
    theirs = app.events.Receiver(app.connection_for_read())
    _, ours = memory_pair()
    bodies = [
        {"type": "task-sent", "clock": 77, "timestamp": 10.0, "utcoffset": 0},
        {"type": "task-received", "clock": 12, "timestamp": 10.0, "utcoffset": 0},
        {"type": "task-sent", "clock": 1, "timestamp": 11.0, "utcoffset": 0},
        {"type": "worker-heartbeat", "timestamp": 12.0},
        {"type": "task-started", "clock": 3, "timestamp": 13.0, "utcoffset": 5.0},
        {"type": "task-succeeded", "clock": 40, "timestamp": 14.0, "utcoffset": -5.5},
    ]
    for body in bodies:
        a = theirs.event_from_message(dict(body), now=lambda: 99.0)
        b = ours.event_from_message(dict(body), now=lambda: 99.0)
        assert a == b
    assert ours.clock.value == theirs.clock.value


@pytest.mark.celery
def test_event_from_message_takes_celerys_arguments_and_gives_celerys_result():
    from celery import Celery
    app = Celery(broker="memory://", set_as_current=False)
    theirs = app.events.Receiver(app.connection_for_read())
    _, ours = memory_pair()
    bodies = [
        {"type": "task-sent", "clock": 9, "timestamp": 10.0, "utcoffset": 2},
        {"type": "task-received", "clock": 12, "timestamp": 10.0, "utcoffset": 0},
        {"type": "worker-heartbeat", "timestamp": 12.0},
        {"type": "task-started", "clock": 3, "utcoffset": 5.0},
        {"type": "task-succeeded", "clock": 40, "timestamp": 14.0, "utcoffset": -5.5},
    ]
    options = [
        {"tzfields": lambda body: (body["utcoffset"] * 2, body["timestamp"])},
        {"adjust_timestamp": lambda timestamp, offset: timestamp + offset * 1000},
        {"CLIENT_CLOCK_SKEW": -7},
        {"localize": False},
        {},
    ]
    for option in options:
        for body in bodies:
            a = theirs.event_from_message(dict(body), now=lambda: 5.0, **option)
            b = ours.event_from_message(dict(body), now=lambda: 5.0, **option)
            assert a == b, option
        assert ours.clock.value == theirs.clock.value


def test_clock_changes_go_through_adjust_clock_and_forward_clock():
    from unittest.mock import Mock
    _, receiver = memory_pair()
    receiver.adjust_clock = Mock(name="adjust_clock")
    receiver.forward_clock = Mock(name="forward_clock", return_value=17)
    receiver.event_from_message({"type": "task-received", "clock": 4})
    receiver.adjust_clock.assert_called_once_with(4)
    _, event = receiver.event_from_message({"type": "worker-heartbeat"})
    receiver.forward_clock.assert_called_once_with()
    assert event["clock"] == 17
    receiver.event_from_message({"type": "task-sent", "clock": 99})
    receiver.adjust_clock.assert_called_with(0)  # (clock value or 1) + CLIENT_CLOCK_SKEW
    # The receiving path goes through them too.
    receiver._handle_content("application/json", b'[{"type": "worker-online", "clock": 8}, '
                                                  b'{"type": "worker-offline"}]')
    receiver.adjust_clock.assert_called_with(8)
    assert receiver.forward_clock.call_count == 2


def test_task_sent_gets_the_receivers_clock_minus_one():
    _, receiver = memory_pair()
    receiver.clock.adjust(41)  # now 42
    _, event = receiver.event_from_message({"type": "task-sent", "clock": 5})
    assert event["clock"] == 41


def test_timestamps_are_moved_to_this_hosts_zone_by_utcoffset():
    _, receiver = memory_pair()
    here = utcoffset()
    _, event = receiver.event_from_message({"type": "x", "timestamp": 1000.0, "utcoffset": here + 5.0})
    assert event["timestamp"] == pytest.approx(1000.0 - 5 * 3600)
    before = time.time()
    _, event = receiver.event_from_message({"type": "x", "timestamp": 1000.0, "utcoffset": here},
                                           localize=False)
    assert event["timestamp"] == 1000.0
    assert before <= event["local_received"] <= time.time()


def test_non_json_content_is_refused_without_decoding(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    payload = pickle.dumps(Exploit())
    with pytest.raises(MalformedEvent) as info:
        decode_body("application/x-python-serialize", payload)
    assert info.value.kind == "content-type:application/x-python-serialize"
    assert not marker.exists()
    with pytest.raises(MalformedEvent) as info:
        decode_body("application/weird", b"{}")
    assert info.value.kind == "content-type:other"
    with pytest.raises(MalformedEvent) as info:
        decode_body("application/json", b"{not json")
    assert info.value.kind == "not-json"
    with pytest.raises(MalformedEvent):
        decode_body("application/json", b"\xff\xfe\xfa")
    assert decode_body("application/json", b'[{"type": "a"}]') == [{"type": "a"}]


@pytest.mark.parametrize("raw", [
    b'{"a": 1}', b"[1, 2]", b"{}", b"{\x00", '{"a": 1}'.encode("utf-16-le"),
    '{"a": 1}'.encode("utf-32"), b'\xef\xbb\xbf{"a": 1}', b'{"a": "\xff"}',
    b'{"a": "\xed\xa0\x80"}', b"{", b"x", b"", "{\"é\": \"ü\"}".encode(),
])
def test_json_bytes_decode_exactly_as_json_loads_decodes_them(raw):
    try:
        expected = ("ok", json.loads(raw))
    except ValueError:
        expected = ("not-json",)
    try:
        got = ("ok", decode_body("application/json", raw))
    except MalformedEvent as exc:
        got = (exc.kind,)
    assert got == expected


@pytest.mark.parametrize("body, kind", [
    (5, "not-an-object"), ("s", "not-an-object"), ([], "not-an-object"), ({}, "missing-type"),
    ({"type": 3}, "bad-field:type"), ({"type": ""}, "bad-field:type"),
    ({"type": "x", "clock": "1"}, "bad-field:clock"), ({"type": "x", "clock": True}, "bad-field:clock"),
    ({"type": "x", "timestamp": "now"}, "bad-field:timestamp"),
    ({"type": "x", "timestamp": float("inf")}, "bad-field:timestamp"),
    ({"type": "x", "utcoffset": "UTC"}, "bad-field:utcoffset"),
    ({"type": "x", "hostname": 1}, "bad-field:hostname"),
    ({"type": "task-sent"}, "bad-field:uuid"),
])
def test_check_event_names_what_is_wrong(body, kind):
    with pytest.raises(MalformedEvent) as info:
        check_event(body)
    assert info.value.kind == kind


def test_round_trip_on_memory_transport_single_and_multi():
    connection, receiver = memory_pair()
    state = State()
    seen = []
    receiver.handlers.update({"task-failed": lambda event: seen.append(event["uuid"]),
                              "*": state.event})
    thread = Capture(receiver, wakeup=False, limit=3, timeout=5).start()
    with EventDispatcher(Connection("memory://"), hostname="w1@test",
                         buffer_group={"task"}, buffer_limit=3) as dispatcher:
        dispatcher.send("worker-online", freq=2.0)
        dispatcher.send("task-received", uuid="u1", name="add", args="()", kwargs="{}")
        dispatcher.send("task-started", uuid="u1")
        dispatcher.send("task-failed", uuid="u1", exception="E()")
        dispatcher.send("worker-heartbeat", freq=2.0)
    thread.join(10)
    assert not thread.errors
    # task-failed went to its own handler only: the '*' handler is for the other types
    assert state.tasks["u1"].state == "STARTED" and state.tasks["u1"].name == "add"
    assert seen == ["u1"]
    assert "w1@test" in state.workers
    assert receiver.event_count == 5


def test_junk_messages_are_counted_logged_once_and_capture_goes_on(caplog):
    connection, receiver = memory_pair()
    state = State()
    receiver.handlers["*"] = state.event
    producer = Producer(Connection("memory://").default_channel, exchange=receiver.exchange)
    raw = [
        (b"{not json", "application/json"),
        (b"{not json either", "application/json"),
        (pickle.dumps({"type": "task-sent"}), "application/x-python-serialize"),
        (b"42", "application/json"),
        (json.dumps([{"type": "task-received", "uuid": "ok", "hostname": "w", "clock": 1,
                      "timestamp": 1.0, "name": "n"}, "junk", {"no": "type"}]).encode(), "application/json"),
        (json.dumps({"type": "task-started", "uuid": "ok", "hostname": "w", "clock": 2,
                    "timestamp": 2.0}).encode(),
         "application/json"),
    ]
    with caplog.at_level(logging.WARNING, logger="evtools.receiver"):
        thread = Capture(receiver, wakeup=False, limit=len(raw), timeout=5).start()
        for body, content_type in raw:
            producer.publish(body, routing_key="x", content_type=content_type,
                             content_encoding="binary")
        thread.join(10)
    assert not thread.errors
    assert state.tasks["ok"].state == "STARTED"
    assert receiver.dropped == {"not-json": 2, "content-type:application/x-python-serialize": 1,
                                "not-an-object": 2, "missing-type": 1}
    warnings = [r for r in caplog.records if "malformed" in r.getMessage()]
    assert len(warnings) == 4


def test_capture_times_out_when_nothing_arrives():
    _, receiver = memory_pair()
    started = time.monotonic()
    with pytest.raises(socket.timeout):
        receiver.capture(timeout=0.3, wakeup=False)
    assert time.monotonic() - started < 3


def test_should_stop_ends_capture():
    _, receiver = memory_pair()
    receiver.handlers["*"] = lambda event: setattr(receiver, "should_stop", True)
    thread = Capture(receiver, wakeup=False, timeout=5).start()
    with EventDispatcher(Connection("memory://")) as dispatcher:
        dispatcher.send("worker-online")
    thread.join(10)
    assert not thread.is_alive() and not thread.errors
    assert receiver.should_stop and receiver.event_count == 1


def test_run_reraises_a_handlers_own_oserror_instead_of_reconnecting():
    _, receiver = memory_pair()
    lost = []

    def handler(event):
        raise BrokenPipeError("stdout closed")
    receiver.handlers["*"] = handler
    with EventDispatcher(Connection("memory://")) as dispatcher:
        receiver.on_ready = lambda: dispatcher.send("worker-online")
        with pytest.raises(BrokenPipeError):
            receiver.run(wakeup=False, on_connection_lost=lost.append)
    assert lost == []


def publish_heartbeats(url, count):
    with Connection(url) as out:
        producer = Producer(out.default_channel, exchange=get_exchange(out))  # fanout on Redis
        for clock in range(count):
            producer.publish({"type": "worker-heartbeat", "clock": clock},
                             routing_key="worker.heartbeat", serializer="json")


@pytest.mark.parametrize("connect", [evtools.connect, Connection], ids=["evtools", "kombu"])
def test_limit_and_should_stop_count_messages_on_every_broker(broker_url, connect):
    """On Redis a transport hands over a whole socket read at once: still one message per yield."""
    seen = []

    def stop_at_five(event):
        seen.append(event["clock"])
        if event["clock"] == 4:
            receiver.should_stop = True

    results = []
    for options, handlers in (({"limit": 3}, None), ({}, {"*": stop_at_five})):
        with connect(broker_url) as connection:
            receiver = EventReceiver(connection, handlers=handlers)
            receiver.on_ready = lambda: publish_heartbeats(broker_url, 50)  # all before a read
            results.append([receiver.event_count for _ in
                            receiver.itercapture(timeout=10, wakeup=False, **options)])
    assert results == [[1, 2, 3], [1, 2, 3, 4, 5]]
    assert seen == [0, 1, 2, 3, 4]


def test_a_receiver_takes_a_broker_url_and_connects_as_the_cli_does(amqp_url):
    events = []
    receiver = EventReceiver(amqp_url, handlers={"*": events.append})
    receiver.on_ready = lambda: publish_heartbeats(amqp_url, 3)
    receiver.capture(limit=3, timeout=10, wakeup=False)
    assert [event["clock"] for event in events] == [0, 1, 2]
    assert receiver.connection.transport_cls is evtools.connect(amqp_url).transport_cls
