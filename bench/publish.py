"""Publish the synthetic stream to the event exchange, as fast as possible or at a fixed rate.

    python -m bench.publish URL --events 100000 --shape single|multi [--rate 25000]
                            [--queue NAME ...] [--cache DIR] [--ssl-options JSON]

``--queue`` declares a receiver's queue (bound to every routing key) before publishing, so the
events wait in it on RabbitMQ. Prints one JSON line: events and messages published, seconds.

Each message is encoded by kombu's own ``Producer.publish`` before the clock starts (what
kombu would write: AMQP frames, or the Redis PUBLISH payload); the timed part only writes
those bytes, in batches. A Python publisher paying kombu's cost per message would manage
about 20,000 messages/s here and, on a 2-core machine, take the CPU the monitors under test
need. ``--cache`` keeps the encoded messages between runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import pickle
import socket
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import redis
from amqp.method_framing import frame_writer
from kombu import Connection, Exchange, Producer, Queue

from .impls import QUEUE_EXPIRES
from .wire import SHAPES, WireMessage, wire_messages

__all__ = ("connect", "event_exchange", "declare_queue", "publish", "publish_probe", "Sender")

#: A paced publisher catches up with its schedule this often.
PACE_TICK = 0.002

#: Messages per write (AMQP) or per pipeline (Redis) when publishing flat out.
BATCH = 500


def connect(url: str, ssl: dict[str, Any] | None = None) -> Connection:
    """A connection to ``url`` that survives the broker's flow control.

    py-amqp sets TCP_USER_TIMEOUT to 1 s, so a publisher that RabbitMQ stops reading from
    for longer (it does, to pace a fast publisher) would see its connection aborted.
    ``ssl``: TLS options in either spelling (see ``evtools.transport.broker.ssl_options_for``).
    """
    options = {"socket_settings": {socket.TCP_USER_TIMEOUT: 0}} if url.startswith("amqp") else {}
    if not ssl:
        return Connection(url, transport_options=options)
    from evtools.transport.broker import ssl_options_for

    return Connection(url, transport_options=options, ssl=ssl_options_for(url.split("://")[0], ssl))


def redis_client(url: str, ssl: dict[str, Any] | None = None) -> redis.Redis:
    """A redis-py client for ``url``, with TLS options in redis-py's spelling (``ssl_*``)."""
    if not ssl:
        return redis.Redis.from_url(url)
    from evtools.transport.broker import ssl_options_for

    return redis.Redis.from_url(url, **ssl_options_for("rediss", ssl))


def event_exchange(connection: Connection) -> Exchange:
    """The event exchange as Celery workers declare it: topic, but fanout (pub/sub) on Redis."""
    kind = "fanout" if connection.transport.driver_type == "redis" else "topic"
    return Exchange("celeryev", type=kind)


def declare_queue(connection: Connection, name: str) -> None:
    """Declare a receiver's queue as both libraries do with the benchmark's settings (no TTL)."""
    queue = Queue(name, exchange=event_exchange(connection), routing_key="#", auto_delete=True,
                  durable=False, exclusive=False, message_ttl=None, expires=QUEUE_EXPIRES)
    queue(connection.default_channel).declare()


def new_producer(connection: Connection) -> Producer:
    """A producer for the event exchange, declared now (not lazily inside an encoding pass)."""
    channel = connection.default_channel
    exchange = event_exchange(connection)
    exchange(channel).declare()
    return Producer(channel, exchange=exchange, auto_declare=False)


def _publish_one(producer: Producer, message: WireMessage) -> None:
    producer.publish(message.body, routing_key=message.routing_key, delivery_mode=1,
                     content_type="application/json", content_encoding="utf-8", retry=False)


class _Recorder:
    """Stands in for a transport while kombu encodes: keeps what would have been written."""

    def __init__(self) -> None:
        self.items: list[Any] = []

    def write(self, data: bytes | memoryview) -> None:
        """py-amqp's transport.write (the buffer is reused by py-amqp, hence the copy)."""
        self.items.append(bytes(data))

    def publish(self, topic: str, payload: str) -> None:
        """redis-py's publish."""
        self.items.append((topic, payload))


@contextlib.contextmanager
def _recording(connection: Connection) -> Iterator[_Recorder]:
    """Make ``connection`` record what kombu would send instead of sending it."""
    recorder = _Recorder()
    channel = connection.default_channel
    if connection.transport.driver_type == "amqp":
        amqp_connection = connection.connection
        direct = amqp_connection.frame_writer
        amqp_connection.frame_writer = frame_writer(amqp_connection, recorder)
        try:
            yield recorder
        finally:
            amqp_connection.frame_writer = direct
    else:
        channel.conn_or_acquire = lambda client=None: contextlib.nullcontext(recorder)
        try:
            yield recorder
        finally:
            del channel.conn_or_acquire


class Sender:
    """Writes pre-encoded messages to the broker: AMQP frames on the socket, or Redis PUBLISH."""

    def __init__(self, connection: Connection, url: str, ssl: dict[str, Any] | None = None) -> None:
        self.connection = connection
        self.producer = new_producer(connection)
        self.amqp = connection.transport.driver_type == "amqp"
        self._redis = None if self.amqp else redis_client(url, ssl)

    def encode(self, messages: Sequence[WireMessage]) -> list[Any]:
        """Return each message as kombu would send it (one item per message)."""
        encoded = []
        with _recording(self.connection) as recorder:
            for message in messages:
                _publish_one(self.producer, message)
                items, recorder.items = recorder.items, []
                encoded.append(b"".join(items) if self.amqp else items[0])
        return encoded

    def send(self, items: Sequence[Any]) -> None:
        """Write these messages in one go."""
        if self.amqp:
            self.connection.connection.transport.write(b"".join(items))
            return
        pipe = self._redis.pipeline(transaction=False)
        for topic, payload in items:
            pipe.publish(topic, payload)
        pipe.execute()


def _encoded(sender: Sender, events: int, shape: str, cache: Path | None) -> tuple[list[Any], list[int]]:
    """The encoded messages and their event counts, from ``cache`` when it has them."""
    kind = "amqp" if sender.amqp else "redis"
    path = cache / f"{kind}-{shape}-{events}.pickle" if cache else None
    if path is not None and path.exists():
        with path.open("rb") as file:
            return pickle.load(file)
    messages = wire_messages(events, shape)
    encoded = (sender.encode(messages), [m.events for m in messages])
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as file:
            pickle.dump(encoded, file, protocol=pickle.HIGHEST_PROTOCOL)
    return encoded


def send_all(sender: Sender, items: Sequence[Any]) -> None:
    """Write every message as fast as possible."""
    for start in range(0, len(items), BATCH):
        sender.send(items[start:start + BATCH])


def send_paced(sender: Sender, items: Sequence[Any], counts: Sequence[int], rate: float) -> None:
    """Write ``rate`` events per second on a fixed schedule (catching up after any delay)."""
    start = time.perf_counter()
    sent_events = 0
    index = 0
    while index < len(items):
        due = (time.perf_counter() - start) * rate
        if sent_events >= due:
            time.sleep(PACE_TICK)
            continue
        first = index
        while index < len(items) and sent_events < due and index - first < BATCH:
            sent_events += counts[index]
            index += 1
        sender.send(items[first:index])


def publish(url: str, events: int, shape: str, rate: float | None = None,
            queues: Sequence[str] = (), cache: Path | None = None,
            ssl: dict[str, Any] | None = None) -> dict[str, Any]:
    """Declare ``queues``, publish ``events`` events of the stream and return what was sent."""
    with connect(url, ssl) as connection:
        for name in queues:
            declare_queue(connection, name)
        sender = Sender(connection, url, ssl)
        items, counts = _encoded(sender, events, shape, cache)
        started_at = time.time()
        began = time.perf_counter()
        if rate:
            send_paced(sender, items, counts, rate)
        else:
            send_all(sender, items)
        seconds = time.perf_counter() - began
    total = sum(counts)
    return {"events": total, "messages": len(items), "seconds": seconds, "rate": total / seconds,
            "started_at": started_at}


def publish_probe(url: str, hostname: str) -> None:
    """Publish one heartbeat from ``hostname``: a dump prints it once it is consuming."""
    body = {"type": "worker-heartbeat", "hostname": hostname, "pid": 1, "clock": 1, "freq": 2.0,
            "active": 0, "processed": 0, "timestamp": time.time(), "utcoffset": 0,
            "sw_ident": "bench", "sw_ver": "0", "sw_sys": "Linux"}
    with connect(url) as connection:
        _publish_one(new_producer(connection), WireMessage("worker.heartbeat", json.dumps(body).encode(), 1))


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line, publish, print one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m bench.publish", description=__doc__.split("\n")[0])
    parser.add_argument("url", help="broker URL")
    parser.add_argument("--events", type=int, default=100_000, help="how many events")
    parser.add_argument("--shape", choices=SHAPES, default="single",
                        help="one event per message, or task.multi lists")
    parser.add_argument("--rate", type=float, default=None, help="events per second (default: flat out)")
    parser.add_argument("--queue", action="append", default=[], help="declare this receiver queue first")
    parser.add_argument("--cache", type=Path, default=None, help="keep encoded messages in this folder")
    parser.add_argument("--ssl-options", type=json.loads, default=None, metavar="JSON",
                        help="TLS options (either spelling), e.g. for rediss://")
    args = parser.parse_args(argv)
    print(json.dumps(publish(args.url, args.events, args.shape, args.rate, args.queue, args.cache,
                             args.ssl_options)), flush=True)


if __name__ == "__main__":
    main()
