"""Type filters pushed down to the broker: messages delivered to ``-t task-failed``, before and after.

Starts a private Redis and RabbitMQ, subscribes three receivers on each (as the CLI connects:
evtools' read-ahead transports), publishes a busy mixed stream of single events (heartbeats,
task-sent/received/started/succeeded, 2 % task-failed) and counts the messages each receiver
was delivered: bound with ``#`` (before: everything is received, decoded and filtered out in
the process), with the keys of ``-t task-failed --json`` and with those of ``-t task-failed``
(human lines name each task, so task-received and task-sent come too).

    python -m bench.pushdown [--events 50000]

``make bench`` (``bench/run.py``) runs it too, on its own brokers, and puts :func:`section`
in RESULTS.md.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence

from kombu import Producer

from evtools.dump.dumper import dump_binding_keys
from evtools.event import Event, get_exchange, routing_key_for
from evtools.filters import binding_keys
from evtools.receiver import EventReceiver
from evtools.transport import connect

#: Messages delivered, by broker name, then by receiver: (label, binding keys, count).
Delivered = dict[str, list[tuple[str, tuple[str, ...], int]]]

#: Share of the events that are task-failed.
FAILED_SHARE = 0.02
#: One worker-heartbeat every this many events.
HEARTBEAT_EVERY = 50


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def mixed_stream(total: int) -> Iterator[str]:
    """Event types of a busy cluster: lifecycles of 4 events, ``FAILED_SHARE`` task-failed."""
    failed_every = round(1 / FAILED_SHARE / 4)  # tasks per failure: 2 % of the events
    count = 0
    for task in itertools.count():
        outcome = "task-failed" if task % failed_every == 0 else "task-succeeded"
        for type_ in ("task-sent", "task-received", "task-started", outcome):
            if count % HEARTBEAT_EVERY == 0:
                yield "worker-heartbeat"
                count += 1
            yield type_
            count += 1
            if count >= total:
                return


class Counted:
    """A receiver bound with ``keys`` in a thread, counting messages until the last event."""

    def __init__(self, url: str, label: str, keys: Sequence[str]) -> None:
        self.label, self.keys = label, tuple(keys)
        self.connection = connect(url)
        self.ready = threading.Event()
        self.receiver = EventReceiver(self.connection, handlers={"*": self.on_event},
                                      routing_key=self.keys, on_ready=self.ready.set)
        self.thread = threading.Thread(target=self.receiver.capture, kwargs={"wakeup": False},
                                       daemon=True)

    def on_event(self, event: dict) -> None:
        if event.get("uuid") == "last":
            self.receiver.should_stop = True


def measure(url: str, total: int,
            say: Callable[[str], None] = _progress) -> list[tuple[str, tuple[str, ...], int]]:
    """Publish ``total`` events on ``url``; return (receiver, keys, messages delivered)."""
    receivers = [Counted(url, "before: `-t task-failed`, filtered in the process", ("#",)),
                 Counted(url, "after: `-t task-failed --json`", binding_keys(["task-failed"])),
                 Counted(url, "after: `-t task-failed` (human lines name the task)",
                         dump_binding_keys(["task-failed"]))]
    for counted in receivers:
        counted.thread.start()
        assert counted.ready.wait(30), f"{counted.label} never became ready"
    sent = {}
    with connect(url) as connection:
        producer = Producer(connection.default_channel, exchange=get_exchange(connection))
        for n, type_ in enumerate(mixed_stream(total - 1)):
            producer.publish(Event(type_, uuid=f"t-{n // 5}", hostname="w1@bench", clock=n + 1),
                             routing_key=routing_key_for(type_), serializer="json")
            sent[type_] = sent.get(type_, 0) + 1
        producer.publish(Event("task-failed", uuid="last", hostname="w1@bench"),
                         routing_key="task.failed", serializer="json")
    say(f"published {sum(sent.values()) + 1}: " + ", ".join(f"{k} {v}" for k, v in sorted(sent.items())))
    deadline = time.monotonic() + 120
    for counted in receivers:
        counted.thread.join(max(0.1, deadline - time.monotonic()))
        counted.connection.release()
    return [(c.label, c.keys, c.receiver.message_count) for c in receivers]


def measure_brokers(redis_url: str, amqp_url: str, total: int,
                    say: Callable[[str], None] = _progress) -> Delivered:
    """The messages delivered to each receiver on Redis, then on RabbitMQ."""
    return {name: measure(url, total, say) for name, url in (("Redis", redis_url),
                                                               ("RabbitMQ", amqp_url))}


def _count(delivered: int, total: int) -> str:
    return f"{delivered:,d}" if delivered == total else f"{delivered:,d} ({delivered / total:.1%})"


def section(delivered: Delivered, total: int) -> list[str]:
    """RESULTS.md's section: messages delivered to each receiver, by broker."""
    lines = ["", "## Type filters pushed down to the broker", "",
             f"`python -m bench.pushdown --events {total}` (evtools' read-ahead transports): "
             f"{total:,d} single events, {FAILED_SHARE:.0%} task-failed (lifecycles of task-sent, "
             "-received, -started, -succeeded/-failed; a heartbeat every "
             f"{HEARTBEAT_EVERY} events), three receivers subscribed at once; messages the "
             "broker delivered to each. Every message not delivered is one the receiver no "
             "longer reads, decodes, checks and discards.", ""]
    brokers = list(delivered)
    lines += ["| receiver | binding keys | " + " | ".join(brokers) + " |",
              "|---|---|" + "---:|" * len(brokers)]
    first = delivered[brokers[0]]
    for row, (label, keys, _) in enumerate(first):
        counts = " | ".join(_count(delivered[name][row][2], total) for name in brokers)
        lines.append(f"| {label} | `{' '.join(keys)}` | {counts} |")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Start private brokers, measure on both, print the section."""
    from .run import private_brokers, say

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    args = parser.parse_args(argv)
    with private_brokers() as brokers:
        delivered = measure_brokers(brokers.redis, brokers.amqp, args.events, say)
    print("\n".join(section(delivered, args.events)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
