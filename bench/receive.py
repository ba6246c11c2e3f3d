"""Receiver throughput: events from a real broker through a receiver into a State (or nowhere).

RabbitMQ: the events are published into the receiver's queue first, then the receiver starts
and the clock runs until it has handled them all. Redis keeps nothing (pub/sub), so a
publisher process sends flat out while the receiver consumes; the rate is measured from the
first event handled to the last, and the events that never arrived are reported.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any


from .impls import new_receiver, new_state
from .publish import redis_client

__all__ = ("measure_receiver", "EventCounter")

#: Stop once no event arrived for this long after the publisher finished (events were lost).
IDLE_STOP = 3.0

#: Give up waiting for anything at all after this long.
START_TIMEOUT = 60.0


class EventCounter:
    """The receiver's handler: passes each event on, counts it, stops the receiver at ``target``."""

    def __init__(self, target: int, inner: Any = None) -> None:
        self.target = target
        self.inner = inner
        self.count = 0
        self.first: float | None = None
        self.last: float | None = None
        self.receiver: Any = None

    def __call__(self, event: dict[str, Any]) -> None:
        """Handle one event."""
        if self.inner is not None:
            self.inner(event)
        self.count += 1
        self.last = now = time.perf_counter()
        if self.first is None:
            self.first = now
        if self.count >= self.target:
            self.receiver.should_stop = True


def _publish_command(url: str, events: int, shape: str, cache: Path, queue: str | None,
                     rate: float | None = None, ssl: dict[str, Any] | None = None) -> list[str]:
    command = [sys.executable, "-m", "bench.publish", url, "--events", str(events), "--shape", shape,
               "--cache", str(cache)]
    command += ["--ssl-options", json.dumps(ssl)] if ssl else []
    return command + (["--queue", queue] if queue else []) + (["--rate", f"{rate:g}"] if rate else [])


def _run_publisher(command: list[str]) -> dict[str, Any]:
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _wait_for_subscriber(url: str, timeout: float = START_TIMEOUT,
                         ssl: dict[str, Any] | None = None) -> None:
    """Block until some client holds a Redis (pattern) subscription: the receiver listens."""
    client = redis_client(url, ssl)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(int(c.get("psub", 0)) or int(c.get("sub", 0)) for c in client.client_list()):
            return
        time.sleep(0.01)
    raise TimeoutError("the receiver never subscribed")


class _Watchdog(threading.Thread):
    """Stops the receiver when events stopped coming (lost on Redis) or never came."""

    def __init__(self, counter: EventCounter, receiver: Any, publisher_done: threading.Event) -> None:
        super().__init__(daemon=True)
        self.counter, self.receiver, self.publisher_done = counter, receiver, publisher_done
        self.began = time.perf_counter()

    def run(self) -> None:
        """Check every 0.2 s until the receiver stops."""
        while not self.receiver.should_stop:
            time.sleep(0.2)
            now = time.perf_counter()
            if self.counter.last is None:
                if now - self.began > START_TIMEOUT:
                    self.receiver.should_stop = True
            elif self.publisher_done.is_set() and now - self.counter.last > IDLE_STOP:
                self.receiver.should_stop = True


def _publish_live(command: list[str], url: str, result: dict[str, Any], done: threading.Event,
                  ssl: dict[str, Any] | None = None) -> None:
    try:
        _wait_for_subscriber(url, ssl=ssl)
        result.update(_run_publisher(command))
    except Exception as exc:  # reported in the result; the watchdog stops the receiver
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        done.set()


def _transport_name(receiver: Any) -> str | None:
    """Module and class of the transport the receiver's connection used."""
    connection = getattr(receiver, "connection", None)
    if connection is None:
        return None
    kind = type(connection.transport)
    return f"{kind.__module__}.{kind.__qualname__}"


def measure_receiver(impl: str, url: str, events: int, shape: str, handler: str, cache: Path,
                     node_id: str, path: str = "cli", rate: float | None = None,
                     timed_part: Callable[[], AbstractContextManager[Any]] = contextlib.nullcontext,
                     ssl: dict[str, Any] | None = None, publish_url: str | None = None,
                     ) -> dict[str, Any]:
    """Run one receiver over ``events`` events of ``shape``; return rates and counts.

    ``timed_part()`` is entered around the capture (to profile it). ``rate`` paces the
    publisher (Redis): ``loss`` is then the share of the published events never handled.
    ``ssl``: TLS options for the receiver and the publisher; ``publish_url`` (default ``url``):
    where the publisher connects (the plain listener of the same RabbitMQ, say), without
    ``ssl`` when given. ``transport`` in the result names the receiver's transport class.
    """
    live = url.startswith("redis")
    state = new_state(impl) if handler == "state" else None
    counter = EventCounter(events, state.event if state is not None else None)
    queue = None if live else f"celeryev.{node_id}"
    publish_ssl = ssl if publish_url is None else None
    command = _publish_command(publish_url or url, events, shape, cache, queue, rate, publish_ssl)
    published: dict[str, Any] = {}
    publisher_done = threading.Event()
    if not live:
        published.update(_run_publisher(command))
        publisher_done.set()
    receiver = counter.receiver = new_receiver(impl, url, counter, node_id, path, ssl=ssl)
    if live:
        threading.Thread(target=_publish_live,
                         args=(command, publish_url or url, published, publisher_done, publish_ssl),
                         daemon=True).start()
    _Watchdog(counter, receiver, publisher_done).start()
    began = time.perf_counter()
    error = None
    try:
        with timed_part():
            receiver.capture(limit=None, timeout=None, wakeup=False)
    except Exception as exc:  # Redis drops a subscriber that falls too far behind
        error = f"{type(exc).__name__}: {exc}"
    publisher_done.wait(START_TIMEOUT)
    start = counter.first if live else began
    seconds = (counter.last or start or began) - (start or began)
    return {"events": counter.count, "published": published.get("events", 0),
            "seconds": seconds, "rate": counter.count / seconds if seconds > 0 else 0.0,
            "publisher_rate": published.get("rate"), "error": error or published.get("error"),
            "tasks": len(state.tasks) if state is not None else None,
            "transport": _transport_name(receiver),
            "loss": 1 - counter.count / published["events"] if published.get("events") else None}
