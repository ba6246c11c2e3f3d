"""The batched Redis transport delivers exactly what kombu's would, however the bytes arrive.

Tests marked ``fast_redis`` are about evtools' read-ahead transport itself; the others are
contracts of the receiver on Redis that hold on kombu's own transport too (the oldest-versions
leg of ``make test``, where the probe turns the read-ahead transport off, runs only those).
"""

from __future__ import annotations

import base64
import datetime
import json
import logging
import pickle
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from kombu import Connection, Producer
from kombu.exceptions import OperationalError
from kombu.utils.json import dumps as kombu_dumps
from kombu.utils.json import loads as kombu_loads

from evtools.transport.broker import connection_for
from evtools.config import Settings
from evtools.dispatcher import EventDispatcher
from evtools.event import get_exchange
from evtools.receiver import MAX_PENDING_STOCK, EventReceiver
from tests.helpers import Capture, wait_for
from tests.servers import RedisServer, TlsRedisServer, free_port


fast_redis = pytest.mark.fast_redis


def fast() -> Any:
    """evtools' read-ahead Redis transport module (imported by the tests about it only)."""
    from evtools.transport import redis as module
    return module


def push(kind: bytes, *items: bytes, resp3: bool = True) -> bytes:
    """A pub/sub push as Redis writes it (RESP3 push or RESP2 array)."""
    fields = (kind, *items)
    head = b">" if resp3 else b"*"
    return head + b"%d\r\n" % len(fields) + b"".join(b"$%d\r\n%s\r\n" % (len(f), f) for f in fields)


def receiver_on(url: str, **transport_options: Any) -> tuple[EventReceiver, list[dict]]:
    """A receiver on ``url`` through evtools' connection, collecting every event it handles."""
    settings = Settings(broker_url=url, broker_transport_options=transport_options)
    events: list[dict] = []
    receiver = EventReceiver(connection_for(settings), handlers={"*": events.append},
                             settings=settings)
    return receiver, events


def send_tasks(url: str, uuids: list[str], connection: Connection | None = None, **fields: Any) -> None:
    """Publish one task-received event per uuid, in order."""
    connection = connection or Connection(url)
    with connection, EventDispatcher(connection, hostname="w1@redis") as dispatcher:
        for uuid in uuids:
            dispatcher.send("task-received", uuid=uuid, name="proj.add", **fields)


def received_uuids(events: list[dict]) -> list[str]:
    return [event["uuid"] for event in events if event["type"] == "task-received"]


# -- cutting pushes out of the stream --------------------------------------------------------

@fast_redis
def test_message_pushes_of_both_protocols_are_cut_out_whole():
    stream = (push(b"pmessage", b"/0.celeryev*", b"/0.celeryev/task.sent", b"one")
              + push(b"message", b"/0.celeryev/x", b"two", resp3=False)
              + push(b"pmessage", b"p", b"c", b"\r\n$3\r\nodd", resp3=False)
              + push(b"message", b"c", b""))
    got, pos = [], 0
    while pos < len(stream):
        channel, payload, pos = fast().split_message(stream, pos)
        got.append((channel, payload))
    assert got == [(b"/0.celeryev/task.sent", b"one"), (b"/0.celeryev/x", b"two"),
                   (b"c", b"\r\n$3\r\nodd"), (b"c", b"")]


def _outcome(split: Any, data: bytes, pos: int) -> Any:
    try:
        return split(data, pos)
    except (fast().Incomplete, fast().NotAMessage) as exc:
        return type(exc).__name__, getattr(exc, "end", None)


@fast_redis
@hypothesis_settings(max_examples=400, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.booleans(), st.booleans(), st.binary(max_size=6),
                          st.binary(max_size=6), st.binary(max_size=40)), min_size=1, max_size=3),
       st.data())
def test_the_one_pass_cut_agrees_with_the_careful_one_on_any_bytes(pushes, data):
    # Whole pushes of both kinds and protocols, then cut short, a byte changed or inserted:
    # the one-pass cut must give what the careful one gives, errors included.
    stream = b"".join(push(b"pmessage" if pattern else b"message",
                           *((p, c, m) if pattern else (c, m)), resp3=resp3)
                      for pattern, resp3, p, c, m in pushes)
    how = data.draw(st.sampled_from(["whole", "cut", "flip", "insert"]))
    at = data.draw(st.integers(0, len(stream) - 1))
    if how == "cut":
        stream = stream[:at]
    elif how == "flip":
        stream = stream[:at] + bytes([data.draw(st.sampled_from(b"$*>\r\n-0123456789x"))]) + stream[at + 1:]
    elif how == "insert":
        stream = stream[:at] + data.draw(st.sampled_from([b"\r\n", b"$", b"-1", b"9"])) + stream[at:]
    pos = 0
    while pos < len(stream):
        got = _outcome(fast().split_message, stream, pos)
        assert got == _outcome(fast()._split_carefully, stream, pos)
        if type(got[0]) is not bytes:
            break
        pos = got[2]


@fast_redis
def test_every_cut_through_a_push_is_incomplete_and_says_how_much_is_missing():
    message = push(b"pmessage", b"pattern", b"channel", b"x" * 300)
    for cut in range(len(message)):
        with pytest.raises(fast().Incomplete) as info:
            fast().split_message(b"junk" + message[:cut], 4)
        end = info.value.end  # how far the data must reach at least, when known
        assert end == 0 or 4 + cut < end <= 4 + len(message), cut
        if cut > len(message) - 300:  # inside the payload: its whole length is known
            assert end == 4 + len(message)
    assert fast().split_message(b"junk" + message, 4)[2] == 4 + len(message)


@fast_redis
@pytest.mark.parametrize("reply", [
    push(b"psubscribe", b"/0.celeryev*", b":1"),
    b">3\r\n$10\r\npsubscribe\r\n$3\r\nabc\r\n:1\r\n",
    b"+PONG\r\n",
    b"-ERR wrong\r\n",
    push(b"pong", b"redis-py-health-check"),
    push(b"smessage", b"c", b"x"),
    b">4\r\n$8\r\npmessage\r\n$-1\r\n",
    b">4\r\n$8\r\npmessage\r\n$1\r\nab\r\n$1\r\nc\r\n$1\r\nd\r\n",
    b">4\r\n$8\r\npmessage\r\n:5\r\n",
])
def test_replies_that_are_not_messages_are_left_to_redis_py(reply):
    with pytest.raises(fast().NotAMessage):
        fast().split_message(reply + push(b"message", b"c", b"after"), 0)


@fast_redis
def test_envelopes_decode_exactly_as_with_kombus_loads():
    when = datetime.datetime(2026, 1, 2, 3, 4, 5)
    texts = [
        kombu_dumps({"body": "e30=", "headers": {"hostname": "w1"}, "properties": {}}),
        kombu_dumps({"headers": {"eta": when}, "properties": {}}),  # an object hook type
        '{"headers": {"\\u005f_type__": "datetime", "__value__": "2026-01-02T03:04:05"}}',
        '{"headers": {"host": "caf\\u00e9"}}',
    ]
    for text in texts:
        assert fast().decode_envelope(text.encode()) == kombu_loads(text)
    assert fast().decode_envelope(texts[1].encode())["headers"]["eta"] == when
    assert fast().decode_envelope(texts[2].encode())["headers"] == when


# -- sharing the socket with redis-py ----------------------------------------------------------

@fast_redis
def test_read_ahead_taken_from_redis_py_and_given_back_keeps_every_byte_in_order(redis_url):
    subscriber = redis.Redis.from_url(redis_url).pubsub()
    subscriber.subscribe("evtools-test-order")
    assert subscriber.get_message(timeout=5)["type"] == "subscribe"
    publisher = redis.Redis.from_url(redis_url)
    for n in range(50):
        publisher.publish("evtools-test-order", f"m{n}")
    connection = subscriber.connection
    assert wait_for(lambda: connection.can_read(timeout=0))
    first = subscriber.get_message(timeout=5)  # redis-py reads ahead of the message it returns
    assert first["data"] == b"m0"
    time.sleep(0.2)  # let the rest reach the socket
    taken = fast().take_read_ahead(connection)
    more = fast().read_available(connection._sock) or b""
    half = len(taken + more) // 2
    fast().give_back(connection, (taken + more)[half:])
    fast().give_back(connection, (taken + more)[:half])  # older bytes go in front
    rest = [subscriber.get_message(timeout=5)["data"] for _ in range(49)]
    assert rest == [f"m{n}".encode() for n in range(1, 50)]
    subscriber.close()


@fast_redis
def test_nothing_to_read_and_a_closed_peer_are_told_apart():
    ours, theirs = socket.socketpair()
    assert fast().read_available(ours) is None
    ours.settimeout(5)  # a socket with a timeout must not wait either
    assert fast().read_available(ours) is None
    theirs.sendall(b"abc")
    assert fast().read_available(ours) == b"abc"
    theirs.close()
    assert fast().read_available(ours) == b""


# -- on a real Redis -------------------------------------------------------------------------

@fast_redis
def test_redis_urls_use_the_batched_transport(redis_url):
    connection = connection_for(Settings(broker_url=redis_url))
    with connection:
        assert connection.transport_cls is fast().Transport
        assert isinstance(connection.default_channel, fast().Channel)


def backlog_capture(url: str, count: int) -> tuple[list[str], list[str], int, int]:
    """Capture a backlog of ``count`` events published before the first read.

    Returns the uuids sent and received, how often itercapture yielded, and how many times
    it called ``drain_events`` to wait (not counting the reads ahead, with ``timeout=0``).
    """
    receiver, events = receiver_on(url)
    uuids = [f"backlog-{n}" for n in range(count)]
    receiver.on_ready = lambda: send_tasks(url, uuids)  # all wait before the first read
    connection = receiver.connection
    drain_events = connection.drain_events
    drains = []
    connection.drain_events = lambda **kwargs: (drains.append(kwargs.get("timeout") != 0),
                                                drain_events(**kwargs))[1]
    yields = 0
    for _ in receiver.itercapture(wakeup=False, timeout=30):
        yields += 1
        if len(events) >= len(uuids):
            break
    return uuids, received_uuids(events), yields, sum(drains)


def test_a_backlog_arrives_in_order(redis_url):
    sent, received, _, _ = backlog_capture(redis_url, 3000)
    assert received == sent


@fast_redis
def test_the_read_ahead_transport_yields_once_per_message_of_a_backlog(redis_url):
    # kombu's own transport hands the whole backlog over in one drain: beyond
    # MAX_PENDING_STOCK waiting, messages are handled as they arrive, without a yield each
    sent, received, yields, _ = backlog_capture(redis_url, 3000)
    assert received == sent
    assert yields == len(sent)


@fast_redis
def test_the_read_ahead_transport_takes_many_messages_per_drain(redis_url):
    sent, received, _, drains = backlog_capture(redis_url, 3000)
    assert received == sent
    assert drains < len(sent) / 20, drains


@fast_redis
def test_the_read_ahead_transport_reads_itself_where_hiredis_is_installed(redis_url):
    from redis.utils import HIREDIS_AVAILABLE

    if not HIREDIS_AVAILABLE:
        pytest.fail("hiredis is not installed (the test extra and evtools[speedups] install it)",
                    pytrace=False)
    plain = redis.Redis.from_url(redis_url)
    plain.ping()
    assert type(plain.connection_pool.get_connection()._parser).__name__ == "_HiredisParser"
    receiver, events = receiver_on(redis_url)
    receiver.on_ready = lambda: send_tasks(redis_url, ["t1", "t2"])
    read_directly = []
    for _ in receiver.itercapture(wakeup=False, timeout=30):
        read_directly.append(fast().readable_directly(receiver.channel.subclient.connection))
        if len(events) >= 2:
            break
    assert received_uuids(events) == ["t1", "t2"]
    assert read_directly == [True, True]  # hiredis' parser has no buffer to read beside


def test_big_messages_between_small_ones_come_through_whole(redis_url):
    receiver, events = receiver_on(redis_url)
    big = "".join(chr(0x41 + n % 26) for n in range(3_000_000))
    thread = Capture(receiver, wakeup=False, timeout=30).start()
    try:
        send_tasks(redis_url, ["small-1"])
        send_tasks(redis_url, ["big-1", "big-2"], args=big)
        send_tasks(redis_url, ["small-2"])
        assert wait_for(lambda: len(events) >= 4, 30), received_uuids(events)
    finally:
        thread.stop()
    assert received_uuids(events) == ["small-1", "big-1", "big-2", "small-2"]
    assert [len(event.get("args", "")) for event in events] == [0, len(big), len(big), 0]
    assert events[1]["args"] == big


def test_non_json_messages_are_counted_as_dropped_by_the_receiver(redis_url):
    receiver, events = receiver_on(redis_url)
    thread = Capture(receiver, wakeup=False, timeout=30).start()
    try:
        with Connection(redis_url) as connection:
            producer = Producer(connection.default_channel, exchange=receiver.exchange)
            producer.publish(pickle.dumps({"type": "task-sent"}), routing_key="task.sent",
                             content_type="application/x-python-serialize",
                             content_encoding="binary")
            producer.publish(b"hello", routing_key="task.sent", content_type="text/plain",
                             content_encoding="utf-8")
            producer.publish(b"\x00\x01", routing_key="task.sent", content_type="weird/type",
                             content_encoding="binary")
            producer.publish(b"{not json", routing_key="task.sent",
                             content_type="application/json", content_encoding="utf-8")
        send_tasks(redis_url, ["after-junk"])
        assert wait_for(lambda: events, 15)
    finally:
        thread.stop()
    assert received_uuids(events) == ["after-junk"]
    assert receiver.dropped == {"content-type:application/x-python-serialize": 1,
                                "content-type:text/plain": 1, "content-type:other": 1,
                                "not-json": 1}


@fast_redis
def test_an_undecodable_envelope_is_logged_and_skipped_like_kombu_does(redis_url, caplog):
    receiver, events = receiver_on(redis_url)
    thread = Capture(receiver, wakeup=False, timeout=30).start()
    publisher = redis.Redis.from_url(redis_url)
    try:
        with caplog.at_level(logging.WARNING, logger="kombu.transport.redis"):
            publisher.publish("/0.celeryev/task.sent", b"{not an envelope")
            publisher.publish("/0.celeryev/task.sent", b"")  # empty: kombu skips it silently
            send_tasks(redis_url, ["after-garbage"])
            assert wait_for(lambda: events, 15)
    finally:
        thread.stop()
    assert received_uuids(events) == ["after-garbage"]
    warnings = [r.getMessage() for r in caplog.records if "Cannot process event" in r.getMessage()]
    assert len(warnings) == 1 and "not an envelope" in warnings[0]
    assert not any(r.exc_info for r in caplog.records)  # one line on the terminal, no traceback


class ChoppingProxy:
    """A TCP proxy in front of Redis that passes the server's bytes on in small, odd pieces."""

    PIECES = (1, 7, 2, 131, 3, 1021, 5)

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", free_port()))
        self.port = self.listener.getsockname()[1]
        self.pieces_sent = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, chop: bool) -> None:
        turn = 0
        try:
            while data := source.recv(65536):
                while chop and data:
                    size = self.PIECES[turn % len(self.PIECES)]
                    sink.sendall(data[:size])
                    data = data[size:]
                    turn += 1
                    self.pieces_sent += 1
                    time.sleep(0.0002)  # the receiver reads before the next piece comes
                sink.sendall(data)
        except OSError:
            pass
        finally:
            sink.close()
            source.close()

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def chopping_proxy(redis_url: str) -> Iterator[ChoppingProxy]:
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    proxy = ChoppingProxy(port)
    yield proxy
    proxy.close()


def test_messages_split_across_reads_arrive_whole_and_in_order(redis_url, chopping_proxy):
    receiver, events = receiver_on(f"redis://127.0.0.1:{chopping_proxy.port}/0")
    uuids = [f"chopped-{n}" for n in range(150)]
    thread = Capture(receiver, wakeup=False, timeout=30).start()
    try:
        before = chopping_proxy.pieces_sent
        send_tasks(redis_url, uuids, kwargs="{'k': '" + "v" * 2000 + "'}")
        assert wait_for(lambda: len(events) >= len(uuids), 60), len(events)
    finally:
        thread.stop()
    assert not thread.errors
    assert received_uuids(events) == uuids
    assert chopping_proxy.pieces_sent - before > len(uuids) * 10  # messages really came in pieces


def test_health_check_replies_between_messages_are_left_to_redis_py(redis_url):
    receiver, events = receiver_on(redis_url, health_check_interval=1)
    admin = redis.Redis.from_url(redis_url)

    def pings() -> int:
        return int(admin.info("commandstats").get("cmdstat_ping", {}).get("calls", 0))

    thread = Capture(receiver, wakeup=False, timeout=30).start()
    try:
        pings_before = pings()
        uuids = [f"checked-{n}" for n in range(30)]
        for uuid in uuids:
            send_tasks(redis_url, [uuid])
            time.sleep(0.1)
        assert wait_for(lambda: len(events) >= len(uuids), 15)
        subclient = receiver.channel.subclient
        assert pings() > pings_before  # the subscriber did check its health while consuming
        assert wait_for(lambda: subclient.health_check_response_counter == 0, 5)
    finally:
        thread.stop()
    assert received_uuids(events) == uuids


def test_a_global_key_prefix_is_taken_off_the_channel_as_kombu_does(redis_url):
    options = {"global_keyprefix": "evtools-test:"}
    receiver, events = receiver_on(redis_url, **options)
    thread = Capture(receiver, wakeup=False, timeout=30).start()
    try:
        send_tasks(redis_url, ["prefixed"], Connection(redis_url, transport_options=options))
        assert wait_for(lambda: events, 15)
    finally:
        thread.stop()
    assert received_uuids(events) == ["prefixed"]


def test_a_subscriber_connection_closed_by_redis_is_a_kombu_connection_error(redis_url):
    receiver, events = receiver_on(redis_url)
    thread = Capture(receiver, wakeup=False, timeout=30).start()
    send_tasks(redis_url, ["before-kill"])
    assert wait_for(lambda: events, 15)
    killed = redis.Redis.from_url(redis_url).client_kill_filter(_type="pubsub", skipme=True)
    assert killed >= 1
    thread.join(10)  # capture ends at once, with the error run() reconnects on
    assert not thread.is_alive()
    assert len(thread.errors) == 1
    assert isinstance(thread.errors[0], receiver.connection.connection_errors), thread.errors


def test_run_reconnects_when_redis_restarts_mid_stream(own_redis):
    receiver, events = receiver_on(own_redis.url)
    lost: list[Exception] = []
    ready = threading.Event()
    channel_types: list[type] = []
    receiver.on_ready = lambda: (channel_types.append(type(receiver.channel)), ready.set())
    errors: list[BaseException] = []

    def run() -> None:
        try:
            receiver.run(wakeup=False, on_connection_lost=lost.append, interval_max=1)
        except Exception as exc:  # noqa: BLE001 - handed to the test
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        assert ready.wait(30)
        stop_publishing = threading.Event()

        def publish_until_stopped() -> None:
            n = 0
            while not stop_publishing.is_set():
                try:
                    send_tasks(own_redis.url, [f"before-{n}"])
                except (OSError, redis.RedisError, OperationalError):  # the broker is being killed
                    return
                n += 1

        publisher = threading.Thread(target=publish_until_stopped, daemon=True)
        publisher.start()
        assert wait_for(lambda: len(events) > 50, 15)
        ready.clear()
        own_redis.kill()  # mid-stream
        stop_publishing.set()
        publisher.join(10)
        assert wait_for(lambda: lost, 30), errors
        own_redis.start()
        assert ready.wait(60), (lost, errors)
        send_tasks(own_redis.url, ["after-restart"])
        assert wait_for(lambda: "after-restart" in received_uuids(events), 15)
    finally:
        receiver.should_stop = True
        thread.join(10)
    assert not errors
    assert isinstance(lost[0], receiver.connection.connection_errors)
    assert len(channel_types) == 2 and channel_types[0] is channel_types[1]  # same transport again
    before = [u for u in received_uuids(events) if u.startswith("before-")]
    assert before == [f"before-{n}" for n in range(len(before))]  # nothing reordered or doubled


def test_events_are_json_objects_with_the_fields_sent(redis_url):
    receiver, events = receiver_on(redis_url)
    thread = Capture(receiver, wakeup=False, timeout=30).start()
    try:
        send_tasks(redis_url, ["fields"], args="(1, 'é')", kwargs=json.dumps({"k": "ü"}))
        assert wait_for(lambda: events, 15)
    finally:
        thread.stop()
    event = events[0]
    assert (event["uuid"], event["name"], event["hostname"]) == ("fields", "proj.add", "w1@redis")
    assert (event["args"], event["kwargs"]) == ("(1, 'é')", '{"k": "\\u00fc"}')


@fast_redis
def test_bodies_decode_exactly_as_kombus_codecs_do(redis_url):
    from kombu.transport.virtual import Channel as VirtualChannel
    with connection_for(Settings(broker_url=redis_url)) as connection:
        channel = connection.default_channel
        for body in ("eyJ0eXBlIjogMX0=", "eyJ0eXBl\nIjogMX0=", "ey Jé0eXBlIjogMX0=", b"e30="):
            assert channel.decode_body(body, "base64") == VirtualChannel.decode_body(
                channel, body, "base64")
        assert channel.decode_body("plain", "utf-8") == "plain"
        assert channel.decode_body("plain", None) == "plain"
        with pytest.raises(ValueError):  # binascii.Error, as kombu's codec raises
            channel.decode_body("abc", "base64")


def tricky_redis_messages() -> list[tuple[Any, dict[str, Any]]]:
    """(body, publish options): the ways a message on Redis may differ from a plain JSON event."""
    event = {"type": "worker-online", "hostname": "w@r", "clock": 3, "timestamp": 1.5,
             "utcoffset": 0, "text": "é"}
    return [
        (event, {"serializer": "json"}),
        (dict(event, clock=4), {"serializer": "json", "compression": "zlib"}),
        (json.dumps(dict(event, clock=5)).encode("latin-1", "replace"),
         {"content_type": "application/json", "content_encoding": "latin-1"}),
        (pickle.dumps(event), {"content_type": "application/x-python-serialize",
                               "content_encoding": "binary"}),
        (b"", {"content_type": "application/json", "content_encoding": "utf-8"}),
        ([dict(event, clock=6), dict(event, clock=7)], {"serializer": "json"}),
        (dict(event, clock=8, big="x" * 300_000), {"serializer": "json",
                                                   "headers": {"n": 1, "nested": {"a": [1]}}}),
        ({"type": "sentinel", "clock": 9}, {"serializer": "json"}),
    ]


@fast_redis
def test_the_plain_route_hands_the_receiver_what_kombus_messages_would(redis_url):
    stock_events: list[dict] = []
    stock = EventReceiver(Connection(redis_url), handlers={"*": stock_events.append})
    ours, our_events = receiver_on(redis_url)
    long_way: list[Any] = []
    on_message = ours._on_message
    ours._on_message = lambda message: (long_way.append(message), on_message(message))
    threads = [Capture(receiver, wakeup=False, timeout=30).start() for receiver in (stock, ours)]
    try:
        assert wait_for(lambda: sum(int(c.get("psub", 0)) for c in
                                    redis.Redis.from_url(redis_url).client_list()) >= 2, 15)
        with Connection(redis_url) as connection:
            producer = Producer(connection.default_channel, exchange=ours.exchange)
            for body, options in tricky_redis_messages():
                producer.publish(body, routing_key="task.multi", **options)
        arrived = wait_for(lambda: any(e["type"] == "sentinel" for e in stock_events)
                           and any(e["type"] == "sentinel" for e in our_events), 20)
        assert arrived, (stock_events, our_events, [t.errors for t in threads])
    finally:
        for thread in threads:
            thread.stop()

    def comparable(events):
        return [{k: v for k, v in e.items() if k != "local_received"} for e in events]

    assert comparable(our_events) == comparable(stock_events)
    assert [e["clock"] for e in our_events] == [3, 4, 5, 6, 7, 8, 9]
    assert ours.dropped == stock.dropped == {"content-type:application/x-python-serialize": 1,
                                             "not-json": 1}
    # only the compressed message and the empty body needed kombu's message object
    assert len(long_way) == 2


@fast_redis
@pytest.mark.parametrize("envelope, expected", [
    ({"body": "e30=", "content-type": "application/json",
      "properties": {"delivery_tag": "t", "body_encoding": "base64"}}, ("application/json", b"{}")),
    ({"body": "e30=", "content-type": "application/json", "headers": {"compression": "zlib"},
      "properties": {"delivery_tag": "t", "body_encoding": "base64"}}, None),
    ({"body": "e30=", "properties": {"body_encoding": "base64"}}, None),  # kombu: KeyError
    ({"body": "{}", "properties": {"delivery_tag": "t"}}, None),  # not base64: kombu encodes it
    ({"body": "", "properties": {"delivery_tag": "t", "body_encoding": "base64"}}, None),
    ({"body": "e30", "properties": {"delivery_tag": "t", "body_encoding": "base64"}}, None),
    ({"body": "e30=", "headers": "odd", "properties": {"delivery_tag": "t",
                                                       "body_encoding": "base64"}}, None),
    ([1, 2], None),
])
def test_plain_content_takes_only_what_kombu_would_merely_base64_decode(envelope, expected):
    assert fast().plain_content(envelope) == expected


# -- a flood on kombu's own transport (rediss://, or any redis:// when the probe says no) -----

class ReadCountingReceiver(EventReceiver):
    """Counts the messages the transport hands over, to compare with those handled."""

    read = 0

    def _on_content(self, content_type, body):
        self.read += 1
        super()._on_content(content_type, body)


def kombu_envelope(url: str, client: redis.Redis, settings: Settings) -> tuple[str, dict]:
    """The channel and envelope kombu publishes an event with (to send many copies at once)."""
    listener = client.pubsub()
    listener.psubscribe("*celeryev*")
    assert listener.get_message(timeout=10)["type"] == "psubscribe"
    with connection_for(settings) as connection:
        Producer(connection.default_channel, exchange=get_exchange(connection)).publish(
            {"type": "worker-heartbeat", "clock": 0}, routing_key="worker.heartbeat",
            serializer="json")
    message = listener.get_message(timeout=10)
    listener.close()
    return message["channel"].decode(), json.loads(message["data"])


def flood(client: redis.Redis, channel: str, envelope: dict, count: int) -> None:
    """Publish ``count`` heartbeats (clock 0, 1, ...) in pipelines, as fast as Redis takes them."""
    pipe = client.pipeline(transaction=False)
    for clock in range(count):
        body = json.dumps({"type": "worker-heartbeat", "hostname": "w1@flood", "clock": clock})
        envelope["body"] = base64.b64encode(body.encode()).decode()
        pipe.publish(channel, json.dumps(envelope))
        if len(pipe) == 1000:
            pipe.execute()
    pipe.execute()


def test_a_flood_on_kombus_redis_transport_is_handled_as_it_is_read(tls_dir, tmp_path):
    """kombu reads the socket for as long as it has data: events must not wait behind it all.

    A TLS Redis (so kombu's own transport) that disconnects a subscriber 4 MB behind gets a
    flood published while the receiver is not reading: the receiver reads what the socket
    holds, then is disconnected. Every message it read is handled, the first after a few.
    """
    server = TlsRedisServer(free_port(), tmp_path / "redis", tls_dir)
    server.start()
    try:
        ssl = {"ssl_cert_reqs": "required", "ssl_ca_certs": str(tls_dir / "ca.pem"),
               "ssl_certfile": str(tls_dir / "client.pem"),
               "ssl_keyfile": str(tls_dir / "client.key")}
        client = redis.Redis.from_url(server.url, **ssl)
        client.config_set("client-output-buffer-limit", "pubsub 4mb 4mb 0")
        settings = Settings(broker_url=server.url, broker_use_ssl=ssl)
        channel, envelope = kombu_envelope(server.url, client, settings)
        read_when_handled: list[int] = []
        receiver = ReadCountingReceiver(connection_for(settings), settings=settings)
        clocks: list[int] = []
        receiver.handlers["worker-heartbeat"] = lambda event: (
            clocks.append(event["clock"]), read_when_handled.append(receiver.read))
        receiver.on_ready = lambda: flood(client, channel, envelope, 60_000)  # ~25 MB
        with receiver.connection:
            assert type(receiver.connection.transport).__module__ == "kombu.transport.redis"
            with pytest.raises(receiver.connection.connection_errors):  # Redis dropped it
                receiver.capture(timeout=30, wakeup=False)
        assert 0 < receiver.read < 60_000
        # every message read, handled, in order
        assert clocks == list(range(receiver.read)), (receiver.read, len(clocks))
        assert read_when_handled[0] <= MAX_PENDING_STOCK + 1 < receiver.read, read_when_handled[:3]
    finally:
        server.stop()


# -- a burst that Redis would not keep for a slow subscriber -----------------------------------

def paced_flood(client: redis.Redis, channel: str, envelope: dict, count: int, pad: int) -> None:
    """Publish ``count`` heartbeats (clock 0, 1, ...) of about ``pad`` bytes more, 100 at a time."""
    pipe = client.pipeline(transaction=False)
    for clock in range(count):
        body = json.dumps({"type": "worker-heartbeat", "hostname": "w1@burst", "clock": clock,
                           "pad": "x" * pad})
        envelope["body"] = base64.b64encode(body.encode()).decode()
        pipe.publish(channel, json.dumps(envelope))
        if len(pipe) == 100:
            pipe.execute()
            time.sleep(0.002)
    pipe.execute()


@fast_redis
def test_a_burst_redis_would_drop_a_slow_subscriber_for_waits_in_the_receiver(tmp_path):
    """Redis drops a subscriber 2 MB behind here. 12,000 events of about 1.3 kB (15 MB) come
    at up to 50,000 a second, and handling one takes half a millisecond: the receiver reads
    ahead of what it has handled, so the backlog waits in its memory and none is lost.
    (Without that, Redis dropped it about 2 MB into the burst.)"""
    server = RedisServer(free_port(), tmp_path / "redis")
    server.start()
    try:
        client = redis.Redis.from_url(server.url)
        client.config_set("client-output-buffer-limit", "pubsub 2mb 2mb 0")
        settings = Settings(broker_url=server.url)
        channel, envelope = kombu_envelope(server.url, client, settings)
        receiver = EventReceiver(connection_for(settings), settings=settings)
        clocks: list[int] = []

        def slow(event: dict) -> None:
            clocks.append(event["clock"])
            time.sleep(0.0005)

        receiver.handlers["worker-heartbeat"] = slow
        publisher = threading.Thread(target=paced_flood,
                                     args=(client, channel, envelope, 12_000, 600))
        receiver.on_ready = publisher.start
        with receiver.connection:
            assert type(receiver.connection.transport).__module__ == "evtools.transport.redis"
            receiver.capture(limit=12_000, timeout=30, wakeup=False)
        publisher.join()
        assert clocks == list(range(12_000))
        assert not receiver.dropped
    finally:
        server.stop()
