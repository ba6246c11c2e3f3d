"""Where events come from: a live broker (with reconnection) or a recording (replay)."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

from .transport import broker, fsbroker
from .config import Settings
from .errors import MalformedEvent, WatchdogExpired
from .receiver import EventReceiver, check_event

__all__ = ("LiveSource", "ReplaySource", "EventHandler")

logger = logging.getLogger(__name__)

EventHandler = Callable[[dict[str, Any]], None]
StatusCallback = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


class LiveSource:
    """Events from the broker in ``settings``, reconnecting by itself when it is lost.

    The first connection is made at once: if the broker cannot be reached then,
    :class:`~evtools.errors.BrokerError` says why. Later losses are reported through
    ``status`` (``-> Connection lost, attempting reconnect``) and retried with capped backoff.
    ``routing_keys`` are the binding keys (:func:`evtools.filters.binding_keys`): the broker
    delivers only the events they match.
    """

    def __init__(self, settings: Settings, wakeup: bool = True,
                 status: StatusCallback = _quiet, retry_startup: bool = False,
                 watchdog: float | None = None, routing_keys: Sequence[str] = ("#",)) -> None:
        self.settings = settings
        self.routing_keys = tuple(routing_keys)
        #: Give up (:class:`WatchdogExpired`) when no event at all arrives for this long.
        self.watchdog = watchdog
        self._expired = False
        self.wakeup = wakeup
        #: Keep trying when the broker is unreachable at start-up (daemons) instead of failing.
        self.retry_startup = retry_startup
        self.status = status
        self.receiver: EventReceiver | None = None
        #: Connection losses so far.
        self.reconnects = 0
        self.connected = threading.Event()
        #: Called once, when the source first consumes or first retries an absent broker.
        self.on_running: Callable[[], None] | None = None
        #: While the event exchange does not exist yet (and we may not declare it): why we wait.
        self.waiting: str | None = None

    @property
    def url(self) -> str:
        """The broker URL, password hidden."""
        return broker.safe_url(self.settings.broker_url)

    def run(self, handler: EventHandler) -> None:
        """Call ``handler`` with each event until :meth:`stop` (or an exception)."""
        connection = (broker.connection_for(self.settings) if self.retry_startup
                      else broker.connect(self.settings))
        receiver = self.receiver = EventReceiver(connection, handlers={"*": handler},
                                                 routing_key=self.routing_keys,
                                                 settings=self.settings, on_ready=self._ready)
        with ExitStack() as stack:
            stack.callback(connection.release)
            if connection.transport.driver_type == "filesystem":
                options = connection.transport_options
                folder = Path(options["control_folder"]).parent
                # kombu's filesystem transport never deletes an auto-delete queue: do it on
                # exit, once the lease (which would bind it again) has stopped
                stack.callback(self._delete_queue, connection, receiver, folder)
                stack.enter_context(fsbroker.Lease(receiver.queue.name, folder))
                fsbroker.sweep(folder, ttl=self.settings.event_queue_ttl or 5.0,
                               expires=self.settings.event_queue_expires or 60.0)
            if self.watchdog:
                stack.enter_context(self._watching(receiver))
            receiver.run(wakeup=self.wakeup, on_connection_lost=self._lost,
                         on_connection_error=self._retrying,
                         on_exchange_missing=self._exchange_missing)
        if self._expired:
            raise self._watchdog_error()

    def _running(self) -> None:
        callback, self.on_running = self.on_running, None
        if callback is not None:
            callback()

    def _ready(self) -> None:
        self._running()
        if self.waiting is not None and self.receiver is not None:
            self.waiting = None
            self.status(f"-> exchange {self.receiver.exchange.name!r} declared by a worker: "
                        "consuming events")
        if self.receiver is not None:
            logger.info("consuming events from %s (queue %s, routing keys %s)", self.url,
                        self.receiver.queue.name, " ".join(self.receiver.routing_keys))
        self.connected.set()

    @staticmethod
    def _delete_queue(connection: Any, receiver: EventReceiver, folder: Path) -> None:
        for queue in receiver.queues:
            try:
                queue(connection.default_channel).delete()
            except Exception:  # best effort: what is left is removed below
                logger.debug("could not delete queue %s", queue.name, exc_info=True)
            try:
                # kombu before 5.4 leaves the binding in the exchange table: remove it ourselves
                fsbroker.remove_queue(queue.name, folder)
            except OSError:  # best effort: a stale binding is swept later anyway
                logger.debug("could not unbind queue %s", queue.name, exc_info=True)

    def _exchange_missing(self, message: str) -> None:
        self._running()  # waiting for the workers is running, for a daemon
        self.waiting = message
        if self.status is _quiet:  # a library user without a status line: the log says it
            logger.warning("%s", message)
        else:
            self.status(f"-> {message}")

    def _lost(self, exc: Exception) -> None:
        if self.retry_startup and self.receiver is not None:
            # A source that waits for its broker (the camera) never went through connect(),
            # which refuses a Redis Cluster node; a node fails at the queue declaration, here.
            broker.refuse_redis_cluster(self.receiver.connection, self.settings.broker_url)
        self.reconnects += 1
        self.connected.clear()
        self.status("-> Connection lost, attempting reconnect")
        logger.info("connection to %s lost: %s", self.url, exc)

    def _watchdog_error(self) -> WatchdogExpired:
        return WatchdogExpired(f"no event for {self.watchdog:g} seconds (--watchdog): exiting so "
                               "that a supervisor can restart the monitor")

    @contextlib.contextmanager
    def _watching(self, receiver: EventReceiver) -> Iterator[None]:
        """A thread that stops the capture once no message arrived for ``watchdog`` seconds."""
        done = threading.Event()
        started = time.time()

        def watch() -> None:
            while not done.wait(min(1.0, self.watchdog or 1.0)):
                last = receiver.last_message_at or started
                if time.time() - last > (self.watchdog or 0):
                    self._expired = True
                    receiver.should_stop = True
                    return

        thread = threading.Thread(target=watch, name="evtools-watchdog", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join(2)

    def _retrying(self, exc: Exception, interval: float) -> None:
        if self._expired:
            raise self._watchdog_error()
        self._running()
        reason = str(exc) or type(exc).__name__
        self.status(f"-> Cannot connect to {self.url}: {reason}. "
                    f"Trying again in {interval:g} seconds")

    def stop(self) -> None:
        """Ask the capture to end (it ends within a second)."""
        if self.receiver is not None:
            self.receiver.should_stop = True


class ReplaySource:
    """Events from a recording made with ``--dump --json``, at their original pace.

    ``speed`` scales the pace (2 is twice as fast); 0 replays as fast as possible. Lines
    that are not events are counted in :attr:`dropped` and logged once per kind.
    """

    def __init__(self, stream: IO[str], speed: float = 1.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.stream = stream
        self.speed = speed
        self.sleep = sleep
        self.dropped: Counter[str] = Counter()
        self.replayed = 0
        self._stopped = False

    def run(self, handler: EventHandler) -> None:
        """Call ``handler`` with each recorded event, waiting as the recording did."""
        first_recorded: float | None = None
        started = time.monotonic()
        for number, line in enumerate(self.stream, 1):
            if self._stopped:
                return
            if not line.strip():
                continue
            event = self._parse(line, number)
            if event is None:
                continue
            when = event.get("local_received", event.get("timestamp"))
            if self.speed > 0 and isinstance(when, (int, float)):
                if first_recorded is None:
                    first_recorded = when
                due = started + (when - first_recorded) / self.speed
                delay = due - time.monotonic()
                if delay > 0:
                    self.sleep(delay)
            handler(event)
            self.replayed += 1

    def _parse(self, line: str, number: int) -> dict[str, Any] | None:
        try:
            return check_event(json.loads(line))
        except ValueError:
            error = MalformedEvent("not-json", f"line {number}")
        except RecursionError:  # json.loads of a line nested deeper than the interpreter allows
            error = MalformedEvent("not-json", f"line {number} is nested too deeply")
        except MalformedEvent as exc:
            error = exc
        if error.kind not in self.dropped:
            logger.warning("replay: skipping line %d: %s (further ones of this kind are counted)",
                           number, error)
        self.dropped[error.kind] += 1
        return None

    def stop(self) -> None:
        """Stop before the next event."""
        self._stopped = True
