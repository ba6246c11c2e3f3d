"""The buffered AMQP transport: the same frames whatever the chunking, and whole deliveries taken
from the buffer delivering exactly what py-amqp and kombu would (checked against them on RabbitMQ)."""

import socket
import ssl
import struct
import time

import pytest

from evtools.transport.amqp import BufferedTCPTransport
from tests.helpers import wait_for


def frame(kind, channel, payload):
    return struct.pack(">BHI", kind, channel, len(payload)) + payload + b"\xce"


def transport_on(sock):
    transport = object.__new__(BufferedTCPTransport)
    transport.sock = sock
    transport.raise_on_initial_eintr = True
    transport.connected = True
    transport._setup_transport()
    return transport


def test_frames_split_and_packed_any_way_are_read_whole():
    ours, theirs = socket.socketpair()
    frames = [frame(1, 1, b"x" * n) for n in (0, 1, 7, 300, 70000)] + [frame(3, 2, b"body")]
    stream = b"".join(frames)
    transport = transport_on(ours)
    for start in range(0, len(stream), 4093):  # odd-sized chunks cut through headers and bodies
        theirs.sendall(stream[start:start + 4093])
    got = [transport.read_frame() for _ in frames]
    assert got == [(1, 1, b"x" * n) for n in (0, 1, 7, 300, 70000)] + [(3, 2, b"body")]


def test_a_timeout_in_the_middle_of_a_frame_loses_nothing():
    ours, theirs = socket.socketpair()
    transport = transport_on(ours)
    data = frame(1, 1, b"hello world")
    theirs.sendall(data[:9])
    ours.settimeout(0.05)
    with pytest.raises(socket.timeout):
        transport.read_frame()
    theirs.sendall(data[9:])
    assert transport.read_frame() == (1, 1, b"hello world")


def test_a_bad_frame_end_and_a_closed_peer_are_errors():
    from amqp.exceptions import UnexpectedFrame
    ours, theirs = socket.socketpair()
    transport = transport_on(ours)
    theirs.sendall(frame(1, 1, b"ab")[:-1] + b"\x00")
    with pytest.raises(UnexpectedFrame):
        transport.read_frame()
    theirs.close()
    with pytest.raises(OSError, match="unexpectedly closed"):
        transport.read_frame()
    assert transport.connected is False


# -- taking whole deliveries out of the buffer ------------------------------------------------

def deliver_frames(channel=1, body=b'{"type": "x"}', consumer_tag="ctag", delivery_tag=7,
                   exchange="celeryev", routing_key="task.sent", properties=None):
    """The three frames RabbitMQ sends for one message, as py-amqp itself would encode them."""
    from amqp import Message
    from amqp.serialization import dumps
    args = dumps("sLbss", (consumer_tag, delivery_tag, False, exchange, routing_key))
    message = Message(body, **(properties or {"content_type": "application/json"}))
    header = struct.pack(">HHQ", 60, 0, len(body)) + message._serialize_properties()
    return [frame(1, channel, struct.pack(">HH", 60, 60) + args), frame(2, channel, header),
            frame(3, channel, body)]


def test_a_whole_delivery_is_found_with_its_three_payloads():
    from evtools.transport.amqp import find_delivery
    method, header, body = deliver_frames(channel=3)
    stream = b"junk" + method + header + body + frame(8, 0, b"")
    found = find_delivery(stream, 4)
    assert found is not None
    channel, method_payload, header_payload, body_payload, end = found
    assert (channel, method_payload, header_payload, body_payload) == \
        (3, method[7:-1], header[7:-1], body[7:-1])
    assert stream[end:] == frame(8, 0, b"")


def test_anything_but_a_whole_single_frame_delivery_is_left_to_py_amqp():
    from evtools.transport.amqp import find_delivery
    method, header, body = deliver_frames()
    whole = method + header + body
    heartbeat = frame(8, 0, b"")
    cases = {
        "every cut short": [whole[:n] for n in range(len(whole))],
        "a heartbeat between method and header": [method + heartbeat + header + body],
        "a heartbeat first": [heartbeat + whole],
        "another method": [frame(1, 1, struct.pack(">HH", 60, 31) + b"\x00" * 8) + header + body],
        "the header on another channel": [method + deliver_frames(channel=2)[1] + body],
        "a bad frame end": [whole[:-1] + b"\x00", method[:-1] + b"\x00" + header + body],
        "a body split in two frames": [
            method + deliver_frames(body=b"0123456789")[1] + frame(3, 1, b"01234")
            + frame(3, 1, b"56789")],
        "an empty body": [deliver_frames(body=b"")[0] + deliver_frames(body=b"")[1]],
        "a body frame longer than its header says": [
            method + deliver_frames(body=b"01234")[1] + frame(3, 1, b"0123456789")],
    }
    for name, streams in cases.items():
        for stream in streams:
            assert find_delivery(stream, 0) is None, name
    assert find_delivery(whole, 0) is not None


def test_a_channel_counts_as_halfway_through_a_message_until_py_amqp_has_handled_it():
    from evtools.transport.amqp import _tracking_frame_handler

    class Connection:
        bytes_recv = 0

    handled = []
    connection = Connection()
    on_frame = _tracking_frame_handler(connection, lambda *args: handled.append(args[:2]))
    method, header, body = (deliver_frames(channel=5, body=b"abc")[n][7:-1] for n in range(3))
    on_frame((1, 5, method))
    on_frame((8, 0, b""))
    assert connection.channels_halfway == {5} and not handled
    on_frame((2, 5, header))
    assert connection.channels_halfway == {5}
    on_frame((3, 5, body))
    assert connection.channels_halfway == set() and handled == [(5, (60, 60))]
    assert connection.bytes_recv == 4


def test_deliver_arguments_are_decoded_as_py_amqp_decodes_them():
    from amqp.serialization import dumps, loads

    from evtools.transport.amqp import deliver_arguments
    for values in [("ctag", 1, False, "celeryev", "task.sent"),
                   ("amq.ctag-é✓", 2 ** 63, True, "", "worker.\udcff")]:
        payload = struct.pack(">HH", 60, 60) + dumps("sLbss", values)
        assert deliver_arguments(payload) == tuple(loads("sLbss", payload, 4)[0])
        for cut in (5, 10, len(payload) - 1):
            with pytest.raises((ValueError, IndexError, struct.error)):
                deliver_arguments(payload[:cut])


# -- on a real RabbitMQ: the fast path against py-amqp's own --------------------------------

#: RabbitMQ's frame_max (py-amqp takes the server's): bigger bodies come in several frames.
FRAME_MAX = 131072


def our_connection(url, **options):
    """A connection on evtools' transport."""
    from kombu import Connection

    from evtools.transport import amqp as amqptransport
    return Connection(url, transport=amqptransport.Transport, **options)


def tricky_messages():
    """(body, publish options): every way a message may differ from a plain JSON event."""
    import pickle
    event = {"type": "worker-online", "hostname": "w@a", "clock": 3, "timestamp": 1.5,
             "utcoffset": 0}
    big = [{"type": "task-started", "uuid": f"big-{n}", "hostname": "w@a", "pad": "x" * 200,
            "clock": 10 + n} for n in range(1000)]
    latin = '{"type": "task-sent", "uuid": "café", "clock": 4}'
    return [
        (event, {"serializer": "json"}),
        (b'\xef\xbb\xbf{"type": "bom"}', {"content_type": "application/json",
                                          "content_encoding": "utf-8"}),
        (latin.encode("latin-1"), {"content_type": "application/json",
                                   "content_encoding": "latin-1"}),
        (b'{"type": "bad-\xff"}', {"content_type": "application/json",
                                   "content_encoding": "utf-8"}),
        (b'{"type": "raw"}', {}),  # kombu: application/data, binary
        ({"type": "task-received", "uuid": "zipped", "clock": 5},
         {"serializer": "json", "compression": "zlib"}),
        (big, {"serializer": "json"}),  # about 250 KiB: several body frames
        (pickle.dumps(event), {"content_type": "application/x-python-serialize",
                               "content_encoding": "binary"}),
        (b"", {"content_type": "application/json", "content_encoding": "utf-8"}),  # no body frame
        # Bodies the fast path hands over as bytes: each must decode as kombu's text would.
        (b'{"type": "surrogate-\xed\xa0\x80"}', {"content_type": "application/json",
                                                 "content_encoding": "utf-8"}),
        (b'{"type": "task-sent", "uuid": "big", "n": 123456789012345678901234, "clock": 6}',
         {"content_type": "application/json", "content_encoding": "UTF-8"}),
        (b'[{"type": "worker-heartbeat", "hostname": "w@b", "x": NaN}]',
         {"content_type": "application/json", "content_encoding": "utf8"}),
        ({"type": "sentinel", "clock": 99}, {"serializer": "json", "headers": {"n": 1}}),
    ]


class Recorder:
    """A receiver capturing in a thread, recording its events and the messages kombu handed it."""

    def __init__(self, connection, node_id, **options):
        from evtools.receiver import EventReceiver
        from tests.helpers import Capture
        self.events = []
        self.long_way = []  # kombu messages: what the fast path left to py-amqp and kombu
        self.receiver = EventReceiver(connection, handlers={"*": self.record}, node_id=node_id,
                                      **options)
        on_message = self.receiver._on_message
        self.receiver._on_message = lambda message: (self.long_way.append(message),
                                                     on_message(message))
        self.capture = Capture(self.receiver, wakeup=False).start()

    def record(self, event):
        self.events.append({k: v for k, v in event.items() if k != "local_received"})

    def saw(self, event_type):
        return any(event["type"] == event_type for event in self.events)


def publish(url, messages, routing_key="task.multi", **options):
    from kombu import Connection, Exchange, Producer
    with Connection(url, **options) as out:
        producer = Producer(out.default_channel, exchange=Exchange("celeryev", type="topic"))
        for body, options in messages:
            producer.publish(body, routing_key=routing_key, **options)


@pytest.fixture(params=["plain", "tls"])
def any_amqp(request, amqp_url):
    """(URL, connection options): the plain listener, or the TLS one with verification."""
    if request.param == "plain":
        return amqp_url, {}
    tls_dir = request.getfixturevalue("tls_dir")
    return request.getfixturevalue("amqps_url"), {
        "ssl": {"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": str(tls_dir / "ca.pem")}}


def test_the_fast_path_receives_exactly_what_py_amqp_and_kombu_deliver(any_amqp):
    from kombu import Connection
    url, options = any_amqp
    with Connection(url, **options) as stock, our_connection(url, **options) as ours:
        theirs, mine = Recorder(stock, "parity-stock"), Recorder(ours, "parity-ours")
        publish(url, tricky_messages(), **options)
        # over TLS too, the read-ahead transport is the one that read them
        assert type(ours.connection._transport).__name__ == (
            "BufferedSSLTransport" if options else "BufferedTCPTransport")
        assert wait_for(lambda: theirs.saw("sentinel") and mine.saw("sentinel"), timeout=20)
        theirs.capture.stop()
        mine.capture.stop()
    assert not theirs.capture.errors and not mine.capture.errors
    assert mine.events == theirs.events
    assert mine.receiver.dropped == theirs.receiver.dropped
    assert dict(mine.receiver.dropped) == {"not-json": 3, "content-type:application/data": 1,
                                           "content-type:application/x-python-serialize": 1}
    assert [e["uuid"] for e in mine.events if e["type"] in ("task-sent", "task-received")] == \
        ["café", "zipped", "big"]
    assert sum(e["type"] == "task-started" for e in mine.events) == 1000
    # Only the compressed, the multi-frame and the empty message took kombu's way.
    assert len(theirs.long_way) == 13
    assert [m.headers.get("compression") for m in mine.long_way] == ["application/x-gzip", None, None]
    assert len(mine.long_way[1].body) > FRAME_MAX and len(mine.long_way[2].body) == 0


def kombu_view(message):
    """What a kombu consumer sees of a message (the consumer tag is the connection's own)."""
    info = {k: v for k, v in message.delivery_info.items() if k != "consumer_tag"}
    return (message.body, message.content_type, message.content_encoding, message.headers,
            message.properties, info, message.delivery_tag, message.payload)


def test_other_consumers_get_the_same_kombu_messages_as_from_py_amqp(amqp_url, monkeypatch):
    from kombu import Connection, Consumer, Exchange, Queue

    from evtools.transport.amqp import BufferedChannel
    taken = []
    amqp_delivery = BufferedChannel._amqp_delivery
    monkeypatch.setattr(BufferedChannel, "_amqp_delivery",
                        lambda self, *args: taken.append(args[0]) or amqp_delivery(self, *args))
    exchange = Exchange("evtools.test.generic", type="fanout", auto_delete=True)
    seen = {"stock": [], "ours": []}
    with Connection(amqp_url) as stock, our_connection(amqp_url) as ours:
        consumers = []
        for name, connection in (("stock", stock), ("ours", ours)):
            queue = Queue(f"evtools.test.generic.{name}", exchange=exchange, exclusive=True)
            consumer = Consumer(connection.default_channel, queues=[queue], no_ack=True,
                                callbacks=[lambda body, message, name=name:
                                           seen[name].append(kombu_view(message))])
            consumer.consume()
            consumers.append((connection, consumer))
        with Connection(amqp_url) as out:
            producer = out.Producer(exchange=exchange)
            for n in range(20):
                producer.publish({"n": n, "text": "é"}, serializer="json",
                                 headers={"n": n, "nested": {"list": [1, "x"]}},
                                 priority=n % 3, correlation_id=f"c{n}", redelivered=None)
            producer.publish(b"x" * (FRAME_MAX + 10), content_type="application/data",
                             content_encoding="binary")
        for connection, _ in consumers:
            while len(seen["stock" if connection is stock else "ours"]) < 21:
                connection.drain_events(timeout=10)
    assert seen["ours"] == seen["stock"]
    assert [view[7] for view in seen["ours"][:2]] == [{"n": 0, "text": "é"}, {"n": 1, "text": "é"}]
    assert type(seen["ours"][0][0]) is str  # decoded by its content encoding, as py-amqp does
    assert len(taken) == 20  # all but the multi-frame one were cut out of the buffer


def counts_at_each_yield(receiver, **options):
    """The receiver's event count each time itercapture yields, and whether more was buffered."""
    counts, more_buffered = [], []
    for _ in receiver.itercapture(timeout=10, wakeup=False, **options):
        counts.append(receiver.event_count)
        transport = receiver.connection.connection.transport
        if hasattr(transport, "buffered"):
            inbox, at = transport.buffered()
            more_buffered.append(len(inbox) > at)
    return counts, more_buffered


@pytest.mark.parametrize("transport", ["stock", "ours"])
def test_limit_and_should_stop_count_messages_even_when_more_wait_in_the_buffer(amqp_url,
                                                                                transport):
    from kombu import Connection

    from evtools.receiver import EventReceiver
    events = [({"type": "worker-heartbeat", "clock": n}, {"serializer": "json"}) for n in range(50)]

    def stop_at_five(event):
        if event["clock"] == 4:
            receiver.should_stop = True

    results = []
    for options, handlers in (({"limit": 3}, None), ({}, {"*": stop_at_five})):
        connection = Connection(amqp_url) if transport == "stock" else our_connection(amqp_url)
        with connection:
            receiver = EventReceiver(connection, handlers=handlers, queue_exclusive=False)
            receiver.queue(connection.default_channel).declare()
            publish(amqp_url, events)
            results.append(counts_at_each_yield(receiver, **options))
    (limited, buffered_at_limit), (stopped, _) = results
    assert limited == [1, 2, 3] and stopped == [1, 2, 3, 4, 5]
    if transport == "ours":
        assert buffered_at_limit[-1]  # the next deliveries had been read, and waited


def test_heartbeats_between_deliveries_keep_the_connection_and_count_as_traffic(amqp_url):
    # The receiver checks heartbeats once a second when idle, so the interval must be longer.
    with our_connection(amqp_url, heartbeat=4) as ours:
        recorder = Recorder(ours, "heartbeats")
        amqp_connection = ours.connection
        publish(amqp_url, [({"type": "worker-online", "clock": 1}, {"serializer": "json"})])
        assert wait_for(lambda: recorder.saw("worker-online"))
        frames_before_idle = amqp_connection.bytes_recv
        time.sleep(5)  # RabbitMQ sends one every 2 s when it has nothing else to send
        frames_after_idle = amqp_connection.bytes_recv
        heartbeats = frames_after_idle - frames_before_idle
        publish(amqp_url, [({"type": "worker-heartbeat", "clock": n}, {"serializer": "json"})
                           for n in range(2, 12)])
        assert wait_for(lambda: len(recorder.events) == 11)
        # three frames a delivery count as traffic, as py-amqp counts them
        assert amqp_connection.bytes_recv - frames_after_idle >= 30
        recorder.capture.stop()
    assert amqp_connection.heartbeat == 4 and heartbeats >= 2
    assert not recorder.capture.errors
    assert [e["clock"] for e in recorder.events] == list(range(1, 12))
    assert recorder.long_way == []


def test_a_receiver_kept_busy_for_longer_than_the_heartbeat_timeout_keeps_its_connection(amqp_url):
    import threading

    from kombu import Connection, Exchange, Producer
    stop = threading.Event()

    def flood():  # never a second without a message: the receiver is never idle
        with Connection(amqp_url) as out:
            producer = Producer(out.default_channel, exchange=Exchange("celeryev", type="topic"))
            clock = 100
            while not stop.is_set():
                for _ in range(50):
                    clock += 1
                    producer.publish({"type": "worker-heartbeat", "clock": clock},
                                     routing_key="worker.heartbeat", serializer="json")
                time.sleep(0.01)

    with our_connection(amqp_url, heartbeat=2) as ours:
        recorder = Recorder(ours, "busy-heartbeats")
        publish(amqp_url, [({"type": "worker-online", "clock": 1}, {"serializer": "json"})])
        assert wait_for(lambda: recorder.saw("worker-online"))
        sent_before = ours.connection.bytes_sent
        flooder = threading.Thread(target=flood, daemon=True)
        flooder.start()
        try:
            time.sleep(9)  # RabbitMQ drops a client silent for two intervals (4 s)
            during = len(recorder.events)
            assert wait_for(lambda: len(recorder.events) > during + 100)
        finally:
            stop.set()
            flooder.join(10)
        recorder.capture.stop()
        sent_while_busy = ours.connection.bytes_sent - sent_before
    assert not recorder.capture.errors
    assert sent_while_busy >= 3  # heartbeats went out while busy


@pytest.mark.parametrize("transport", ["stock", "ours"])
def test_a_deleted_queue_cancels_the_consumer_as_py_amqp_does(amqp_url, transport):
    from amqp.exceptions import ConsumerCancelled
    from kombu import Connection, Queue
    connection = Connection(amqp_url) if transport == "stock" else our_connection(amqp_url)
    with connection:
        recorder = Recorder(connection, f"cancel-{transport}", queue_exclusive=False)
        publish(amqp_url, [({"type": "worker-online", "clock": n}, {"serializer": "json"})
                           for n in range(10)])
        assert wait_for(lambda: len(recorder.events) == 10)
        with Connection(amqp_url) as other:
            Queue(recorder.receiver.queue.name)(other.default_channel).delete()
        recorder.capture.join(10)
    assert not recorder.capture.is_alive()
    assert [type(error) for error in recorder.capture.errors] == [ConsumerCancelled]


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_the_broker_going_away_mid_stream_raises_a_connection_error(own_rabbit, how):
    url = own_rabbit.url
    slow = []

    def handle_slowly(event):
        slow.append(event)
        time.sleep(0.001)

    with our_connection(url) as ours:
        from evtools.receiver import EventReceiver
        from tests.helpers import Capture
        receiver = EventReceiver(ours, handlers={"*": handle_slowly}, node_id="going")
        capture = Capture(receiver, wakeup=False).start()
        publish(url, [({"type": "worker-heartbeat", "clock": n}, {"serializer": "json"})
                      for n in range(3000)])
        assert wait_for(lambda: len(slow) >= 100)
        getattr(own_rabbit, how)()
        capture.join(30)
        assert not capture.is_alive()
        assert len(capture.errors) == 1
        assert isinstance(capture.errors[0], ours.connection_errors)
    assert [e["clock"] for e in slow] == list(range(len(slow)))  # nothing lost or reordered
