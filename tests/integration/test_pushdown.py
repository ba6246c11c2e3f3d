"""Type filters pushed down to the broker: unwanted events never reach the receiver.

A publisher sends a mixed stream (heartbeats, task lifecycles, a few failures, a
``task.multi`` list); receivers bound with the keys for ``-t task-failed`` and friends count
what the broker delivered, and dump the same lines as a receiver bound with ``#``.
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Sequence

import pytest
from kombu import Connection, Producer

from evtools.dump.dumper import Dumper, dump_binding_keys
from evtools.event import Event, get_exchange, routing_key_for
from evtools.filters import EventFilter, binding_keys
from evtools.receiver import EventReceiver
from evtools.transport import connect
from tests.helpers import Capture, wait_for

@pytest.fixture(params=["read-ahead", "kombu"])
def connection_for(request: pytest.FixtureRequest):
    """Receivers on evtools' read-ahead transports (as the CLI), or on kombu's own."""
    return connect if request.param == "read-ahead" else Connection


TASKS = 40
FAILED_EVERY = 10  # tasks 0, 10, 20, 30 fail
HEARTBEATS = 30


class Tap:
    """A receiver bound with ``keys``, dumping what ``types`` keep into a string."""

    def __init__(self, url: str, keys: Sequence[str], types: Sequence[str] = ("task-failed",),
                 connection_for=connect) -> None:
        self.connection = connection_for(url)
        self.out = io.StringIO()
        self.dumper = Dumper(out=self.out, event_filter=EventFilter(types=types))
        self.seen_last = False
        self.receiver = EventReceiver(self.connection, handlers={"*": self.on_event},
                                      routing_key=keys)
        self.capture = Capture(self.receiver, wakeup=False)

    def on_event(self, event: dict) -> None:
        self.dumper.on_event(event)
        if event.get("uuid") == "last" and event["type"] == "task-failed":
            self.seen_last = True

    def lines(self) -> list[str]:
        """The dump's lines, without the one thing that differs per receiver."""
        return re.sub(r"local_received=[0-9.e+-]+", "", self.out.getvalue()).splitlines()


def publish_mixed_stream(url: str, connection_for=Connection) -> dict[str, int]:
    """Publish the mix; return how many messages went out per routing key."""
    sent: dict[str, int] = {}
    clock = itertools.count(1)  # each event its own, so receivers need not invent them
    with connection_for(url) as connection:
        producer = Producer(connection.default_channel, exchange=get_exchange(connection))

        def publish(body: object, routing_key: str) -> None:
            producer.publish(body, routing_key=routing_key, serializer="json")
            sent[routing_key] = sent.get(routing_key, 0) + 1

        def send(type_: str, **fields: object) -> None:
            publish(Event(type_, hostname="w1@pushdown", timestamp=1_700_000_000.0,
                          clock=next(clock), **fields),
                    routing_key_for(type_))

        for n in range(max(TASKS, HEARTBEATS)):
            if n < HEARTBEATS:
                send("worker-heartbeat", freq=2.0, active=0, processed=n)
            if n < TASKS:
                uuid = f"t-{n}"
                send("task-received", uuid=uuid, name="proj.add", args="(1, 2)", kwargs="{}")
                send("task-started", uuid=uuid)
                if n % FAILED_EVERY:
                    send("task-succeeded", uuid=uuid, result="3", runtime=0.01)
                else:
                    send("task-failed", uuid=uuid, exception="ValueError('boom')")
        publish([Event("task-received", uuid="m", name="proj.mul", hostname="w1@pushdown",
                       timestamp=1_700_000_000.0, clock=next(clock)),
                 Event("task-failed", uuid="m", exception="KeyError('k')", hostname="w1@pushdown",
                       timestamp=1_700_000_000.0, clock=next(clock))], "task.multi")
        send("task-received", uuid="last", name="proj.last", args="()", kwargs="{}")
        send("task-failed", uuid="last", exception="RuntimeError('end')")
    return sent


def run_taps(url: str, taps: list[Tap], connection_for=Connection) -> dict[str, int]:
    for tap in taps:
        tap.capture.start()
    try:
        sent = publish_mixed_stream(url, connection_for)
        assert wait_for(lambda: all(tap.seen_last for tap in taps), timeout=20)
    finally:
        for tap in taps:
            tap.receiver.should_stop = True
            tap.capture.join(5)
            tap.connection.release()
    for tap in taps:
        assert not tap.capture.errors and not tap.receiver.dropped
    return sent


def test_a_failed_task_dump_receives_only_failures_and_multi_lists(broker_url, connection_for):
    exact = Tap(broker_url, binding_keys(["task-failed"]), connection_for=connection_for)
    everything = Tap(broker_url, "#", connection_for=connection_for)
    sent = run_taps(broker_url, [exact, everything])
    assert exact.receiver.message_count == sent["task.failed"] + sent["task.multi"] == 6
    assert everything.receiver.message_count == sum(sent.values())
    failures = [line for line in everything.lines() if "failed" in line.lower()]
    assert len(failures) == 6 and len(exact.lines()) == 6


def test_a_pushed_down_dump_prints_the_same_lines_as_one_filtering_everything(broker_url, connection_for):
    pushed = Tap(broker_url, dump_binding_keys(["task-failed"]), connection_for=connection_for)
    everything = Tap(broker_url, "#", connection_for=connection_for)
    sent = run_taps(broker_url, [pushed, everything])
    # the names of failed tasks come from their task-received events, delivered too
    assert pushed.receiver.message_count == (sent["task.failed"] + sent["task.multi"]
                                             + sent["task.received"])
    assert pushed.lines() == everything.lines()
    assert "proj.add" in pushed.lines()[0] and any("proj.mul" in line for line in pushed.lines())


def test_a_glob_that_is_no_whole_word_is_widened_and_filtered_in_process(broker_url, connection_for):
    widened = Tap(broker_url, binding_keys(["task-fail*"]), types=["task-fail*"], connection_for=connection_for)
    everything = Tap(broker_url, "#", types=["task-fail*"], connection_for=connection_for)
    sent = run_taps(broker_url, [widened, everything])
    assert widened.receiver.routing_keys == ("task.#",)
    task_messages = sum(count for key, count in sent.items() if key.startswith("task."))
    assert widened.receiver.message_count == task_messages < sum(sent.values())
    assert widened.lines() == everything.lines() and len(widened.lines()) == 6


def test_several_groups_are_each_delivered_once(broker_url, connection_for):
    keys = dump_binding_keys(["task-failed", "worker-*"])
    assert "worker.#" in keys and "task.multi" in keys
    several = Tap(broker_url, keys, types=["task-failed", "worker-*"], connection_for=connection_for)
    everything = Tap(broker_url, "#", types=["task-failed", "worker-*"], connection_for=connection_for)
    sent = run_taps(broker_url, [several, everything])
    assert several.receiver.message_count == (sent["task.failed"] + sent["task.multi"]
                                              + sent["task.received"] + sent["worker.heartbeat"])
    assert several.lines() == everything.lines()


def test_without_fanout_patterns_redis_delivers_everything_and_the_dump_still_filters(redis_url):
    options = {"transport_options": {"fanout_patterns": False}}
    pushed = Tap(redis_url, dump_binding_keys(["task-failed"]),
                 connection_for=lambda url: connect(url, **options))
    with Connection(redis_url, **options) as publisher:
        pushed.capture.start()
        try:
            with Producer(publisher.default_channel, exchange=get_exchange(publisher)) as producer:
                for type_, uuid in (("task-received", "last"), ("worker-heartbeat", None),
                                    ("task-failed", "last")):
                    producer.publish(Event(type_, uuid=uuid, name="proj.last", hostname="w@x",
                                           timestamp=1_700_000_000.0, clock=1),
                                     routing_key=routing_key_for(type_), serializer="json")
            assert wait_for(lambda: pushed.seen_last, timeout=10)
        finally:
            pushed.receiver.should_stop = True
            pushed.capture.join(5)
            pushed.connection.release()
    assert pushed.receiver.message_count == 3  # one channel for all: nothing pushed down
    assert len(pushed.lines()) == 1 and "proj.last" in pushed.lines()[0]


def test_on_sentinel_both_fanout_prefixes_are_bound_once_per_key(sentinel):
    url, master_name = sentinel

    def connection_for(url: str) -> Connection:
        return connect(url, transport_options={"master_name": master_name})
    pushed = Tap(url, dump_binding_keys(["task-failed"]), connection_for=connection_for)
    everything = Tap(url, "#", connection_for=connection_for)
    sent = run_taps(url, [pushed, everything], connection_for)
    assert pushed.receiver.message_count == (sent["task.failed"] + sent["task.multi"]
                                             + sent["task.received"])
    assert pushed.lines() == everything.lines()
