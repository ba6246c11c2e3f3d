"""Receiving events: decode, validate, keep the clock, localise timestamps, call handlers."""

from __future__ import annotations

import logging
import math
import time
import uuid as uuidlib
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from operator import itemgetter
from typing import Any

from kombu import Connection, Consumer, Queue, binding
from kombu.clocks import LamportClock

from .config import Settings, resolve_settings
from .control import broadcast
from .errors import ConfigurationError, MalformedEvent, PermissionRefused
from .event import get_exchange
from .transport.speedups import body_loads
from .tz import adjust_timestamp as _adjust_timestamp
from .transport.broker import (access_refused, exchange_missing, missing_exchange_message,
                               permission_message)
from .tz import utcoffset

__all__ = ("CLIENT_CLOCK_SKEW", "EventReceiver", "check_event", "decode_body")

logger = logging.getLogger(__name__)

#: Clients never synchronise their clocks: a task-sent gets the receiver's clock plus this.
CLIENT_CLOCK_SKEW = -1

#: Reads (utcoffset, timestamp) from an event, raising KeyError if either is missing.
_TZGETTER = itemgetter("utcoffset", "timestamp")

#: How long one wait for a message lasts before checking ``should_stop`` and the timeout.
SAFETY_INTERVAL = 1.0

#: While messages keep coming, the clock is read every this many messages to see whether
#: connection heartbeats are due (checked at most once per ``SAFETY_INTERVAL``).
HEARTBEAT_CHECK_EVERY = 256

#: Messages a transport hands over in one go are handled one by one, between yields; beyond
#: this many waiting they are handled as they arrive, so that memory stays bounded. evtools'
#: read-ahead transports hand over at most a few thousand at a time.
MAX_PENDING = 60_000

#: On a broker that drops a slow subscriber (Redis, 32 MB behind), the receiver takes what
#: has arrived at least every ``EAGER_READ_SECONDS`` (looking every ``EAGER_READ_EVERY``
#: messages handled), while fewer than ``EAGER_READ_LIMIT`` wait: a burst then waits in the
#: receiver (about 0.6 kB a message, some 30 MB at the limit) rather than in Redis.
EAGER_READ_EVERY = 16
EAGER_READ_SECONDS = 0.002
EAGER_READ_LIMIT = 50_000

#: The same bound on kombu's own transports. Its Redis transport reads for as long as the
#: socket has data: under a flood it never returns, so messages are handled as they arrive
#: beyond this many, or Redis disconnects a receiver that has read thousands and handled none.
MAX_PENDING_STOCK = 256

#: How often a user that may not declare the event exchange looks for it until a worker has.
EXCHANGE_POLL_INTERVAL = 2.0

JSON_CONTENT_TYPE = "application/json"

#: Content types named in drop counts; any other is counted as ``content-type:other``.
KNOWN_CONTENT_TYPES = frozenset({
    "application/x-python-serialize", "application/x-yaml", "application/x-msgpack",
    "application/data", "text/plain",
})

_NUMBER_TYPES = (int, float)


def decode_body(content_type: str | None, body: bytes | str,
                loads: Callable[[bytes | str], Any] | None = None) -> Any:
    """Return the decoded JSON body of a message, refusing anything that is not JSON.

    Raises :class:`MalformedEvent` (``content-type:...`` or ``not-json``) without ever
    decoding a non-JSON body. ``loads`` decodes (default: orjson where ``evtools[speedups]``
    installed it, else the standard library; the same values either way).
    """
    if content_type != JSON_CONTENT_TYPE:
        known = content_type if content_type in KNOWN_CONTENT_TYPES else "other"
        raise MalformedEvent(f"content-type:{known}", f"refused content type {content_type!r}")
    try:
        return (loads or body_loads())(body)
    except (ValueError, TypeError, RecursionError) as exc:
        raise MalformedEvent("not-json", str(exc)[:200]) from None


def check_event(body: Any) -> dict[str, Any]:
    """Return ``body`` if it is a usable event, else raise :class:`MalformedEvent`.

    An event is a JSON object with a non-empty string ``type``; ``clock`` (if present) is
    an integer; ``timestamp`` and ``utcoffset`` are finite numbers; ``hostname`` is a
    string; task events carry a string ``uuid``.
    """
    if type(body) is not dict:
        raise MalformedEvent("not-an-object", type(body).__name__)
    type_ = body.get("type")
    if type(type_) is not str or not type_:
        raise MalformedEvent("missing-type" if type_ is None else "bad-field:type")
    clock = body.get("clock")
    if clock is not None and (type(clock) is not int or clock < 0):
        raise MalformedEvent("bad-field:clock", repr(clock)[:80])
    for key in ("timestamp", "utcoffset"):
        value = body.get(key)
        if value is not None and (type(value) not in _NUMBER_TYPES or not math.isfinite(value)):
            raise MalformedEvent(f"bad-field:{key}", repr(value)[:80])
    hostname = body.get("hostname")
    if hostname is not None and type(hostname) is not str:
        raise MalformedEvent("bad-field:hostname", repr(hostname)[:80])
    if type_.startswith("task-") and type(body.get("uuid")) is not str:
        raise MalformedEvent("bad-field:uuid", repr(body.get("uuid"))[:80])
    return body


def _nothing_to_stop() -> None:
    """What stops a route that was never set up."""


class _HandlerFailed(Exception):
    """Carries what a handler raised (``cause``) past the connection-error handling."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(cause)
        self.cause = cause


def _subscribe_now(connection: Connection, channel: Any) -> None:
    """On Redis, subscribe to the fanout exchange now rather than at the first poll.

    kombu sends Redis' PSUBSCRIBE lazily, when it first waits for a message: anything
    published before that (the workers' answer to the wakeup broadcast, events sent
    right after :attr:`EventReceiver.on_ready`) would be lost, since pub/sub keeps nothing.
    """
    poller = getattr(connection.transport, "cycle", None)
    if poller is not None and getattr(channel, "active_fanout_queues", None) \
            and hasattr(poller, "on_poll_start"):
        poller.on_poll_start()  # what kombu does before its first wait: registers and subscribes


class EventReceiver:
    """Capture events from the event exchange, as ``celery.events.EventReceiver`` does.

    ``channel`` is a :class:`kombu.Connection` (or a channel of one), or a broker URL, which
    gets the connection :func:`evtools.connect` makes. ``handlers`` maps an
    event type to a callable taking the event dict; ``'*'`` catches the types that have
    no handler of their own. Only JSON messages are accepted; anything else, and any
    message that is not a valid event, is dropped, counted in :attr:`dropped` by kind and
    logged once per kind, and capture goes on.

    ``routing_key`` is the binding key (``'#'``: every event), or several (see
    :func:`evtools.filters.binding_keys`): the broker then delivers only events whose routing
    key matches one of them.
    """

    def __init__(self, channel: Any, handlers: Mapping[str, Callable[[dict], Any]] | None = None,
                 routing_key: str | Sequence[str] = "#", node_id: str | None = None, app: Any = None,
                 queue_prefix: str | None = None, accept: Any = None,
                 queue_ttl: float | None = None, queue_expires: float | None = None,
                 queue_exclusive: bool | None = None, queue_durable: bool | None = None,
                 *, settings: Settings | None = None, clock: LamportClock | None = None,
                 on_ready: Callable[[], None] | None = None) -> None:
        if settings is None:
            settings = resolve_settings(app=app, environ={}) if app is not None else Settings()
        if accept is not None and set(accept) - {"json", JSON_CONTENT_TYPE}:
            raise ConfigurationError("evtools accepts JSON events only (accept must be ['json'])")
        if isinstance(channel, str):
            from .transport import connect

            channel = connect(channel)
        if isinstance(channel, Connection):
            self._connection, self._channel = channel, None
        else:
            self._connection, self._channel = channel.connection.client, channel
        self.app = app
        self.handlers: dict[str, Callable[[dict], Any]] = {} if handlers is None else dict(handlers)
        self.routing_key = routing_key
        self.node_id = node_id or str(uuidlib.uuid4())
        self.queue_prefix = queue_prefix or settings.event_queue_prefix
        self.settings = settings
        self.accept = {JSON_CONTENT_TYPE}
        self.clock = clock if clock is not None else LamportClock()
        # Bound once, as Celery does: every clock change goes through these two, so code that
        # replaces them (tests with mocks, a shared clock) sees each change.
        self.adjust_clock: Callable[[int], int] = self.clock.adjust
        self.forward_clock: Callable[[], int] = self.clock.forward
        self.exchange = get_exchange(self._connection, name=settings.event_exchange)
        ttl = settings.event_queue_ttl if queue_ttl is None else queue_ttl
        expires = settings.event_queue_expires if queue_expires is None else queue_expires
        exclusive = settings.event_queue_exclusive if queue_exclusive is None else queue_exclusive
        durable = settings.event_queue_durable if queue_durable is None else queue_durable
        if exclusive and durable:
            raise ConfigurationError("the event queue cannot be both exclusive and durable")
        #: The binding keys, one or more.
        self.routing_keys: tuple[str, ...] = ((routing_key,) if isinstance(routing_key, str)
                                              else tuple(routing_key) or ("#",))
        options = dict(auto_delete=not durable, durable=durable, exclusive=exclusive,
                       message_ttl=ttl, expires=expires)
        #: The queues consumed: one, except on Redis with several keys.
        self.queues = self._queues_for(f"{self.queue_prefix}.{self.node_id}", options)
        #: The event queue (the first, when there are several).
        self.queue = self.queues[0]
        #: Messages and events dropped, by kind (``not-json``, ``content-type:...``, ...).
        self.dropped: Counter[str] = Counter()
        #: Events handed to handlers so far.
        self.event_count = 0
        #: Time of the last message received (``time.time()``), or None.
        self.last_message_at: float | None = None
        self.should_stop = False
        #: (content type, body) of messages received and not handled yet.
        self._pending: deque[tuple[Any, Any]] = deque()
        #: Messages handled so far (``limit`` counts these).
        self._handled = 0
        #: Messages waiting beyond which they are handled as they arrive (set per capture).
        self._max_pending = MAX_PENDING
        #: The value of ``_handled`` at which the running capture's ``limit`` is reached.
        self._stop_at: int | None = None
        #: Called each time the consumer is ready (queue bound), before the first wait.
        self.on_ready = on_ready
        self._handler_errors_apart = False
        #: Times the consumer became ready (to tell a failure before consuming from a loss).
        self._ready_count = 0
        self._offset = 0.0
        self._offset_expires = 0.0
        #: What RabbitMQ said when it refused to let us declare the exchange (None: it did not).
        self._declare_refused: dict[str, str] | None = None
        #: Decodes message bodies: orjson or the standard library, decided once per process.
        self._loads = body_loads()

    def _queues_for(self, name: str, options: dict[str, Any]) -> list[Queue]:
        """The queue bound with every routing key: on a fanout exchange, one queue per key.

        kombu's Redis transport keeps one pattern per fanout queue (a second binding
        replaces the first), so each key gets its own queue there; the keys never overlap,
        so no message comes twice.
        """
        exchange, keys = self.exchange, self.routing_keys
        if len(keys) == 1:
            return [Queue(name, exchange=exchange, routing_key=keys[0], **options)]
        if exchange.type == "fanout":
            return [Queue(f"{name}.{i}" if i else name, exchange=exchange, routing_key=key, **options)
                    for i, key in enumerate(keys)]
        return [Queue(name, exchange=exchange, routing_key=keys[0], **options,
                      bindings=[binding(exchange, routing_key=key) for key in keys])]

    # -- the connection ------------------------------------------------------------------

    @property
    def message_count(self) -> int:
        """Messages the broker delivered and this receiver handled (a ``task.multi`` list is one)."""
        return self._handled

    @property
    def connection(self) -> Connection:
        """The broker connection events are consumed from."""
        return self._connection

    @property
    def channel(self) -> Any:
        """The channel events are consumed on."""
        return self._channel if self._channel is not None else self._connection.default_channel

    def __enter__(self) -> EventReceiver:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.should_stop = True

    # -- events --------------------------------------------------------------------------

    def process(self, type: str, event: dict[str, Any]) -> None:
        """Call the handler for ``type`` (or the ``'*'`` handler) with ``event``."""
        handler = self.handlers.get(type) or self.handlers.get("*")
        if handler is not None:
            handler(event)

    def event_from_message(self, body: dict[str, Any], localize: bool = True,
                           now: Callable[[], float] = time.time,
                           tzfields: Callable[[dict[str, Any]], tuple[Any, Any]] = _TZGETTER,
                           adjust_timestamp: Callable[[float, float], float] = _adjust_timestamp,
                           CLIENT_CLOCK_SKEW: int = CLIENT_CLOCK_SKEW,  # noqa: N803 (Celery's name)
                           ) -> tuple[str, dict[str, Any]]:
        """Prepare a decoded event: clock, local timestamp and ``local_received``; return (type, event).

        As Celery's: a task-sent comes from a client whose clock is never synchronised, so it
        gets this receiver's clock value plus ``CLIENT_CLOCK_SKEW``; an event without a clock
        gets the next value; clock changes go through :attr:`adjust_clock` and
        :attr:`forward_clock`. ``tzfields(body)`` returns (utcoffset, timestamp) or raises
        KeyError; ``adjust_timestamp(timestamp, utcoffset)`` localises. With the default
        ``adjust_timestamp`` this host's offset is looked up at most once a minute, and a null
        clock, utcoffset or timestamp counts as missing.
        """
        type_ = body["type"]
        if type_ == "task-sent":
            sent_clock = body["clock"] = (self.clock.value or 1) + CLIENT_CLOCK_SKEW
            self.adjust_clock(sent_clock)
        else:
            clock = body.get("clock")
            if clock is None:
                body["clock"] = self.forward_clock()
            else:
                self.adjust_clock(clock)
        received = now()
        if localize:
            try:
                offset, timestamp = tzfields(body)
            except KeyError:
                pass
            else:
                if offset is not None and timestamp is not None:
                    if adjust_timestamp is _adjust_timestamp:
                        here = self._local_offset(received)
                        body["timestamp"] = timestamp - (offset - here) * 3600
                    else:
                        body["timestamp"] = adjust_timestamp(timestamp, offset)
        body["local_received"] = received
        return type_, body

    def _local_offset(self, now: float) -> float:
        """This host's UTC offset, looked up at most once a minute (``localtime`` is not free)."""
        if now >= self._offset_expires or now < self._offset_expires - 120:
            self._offset = utcoffset()
            self._offset_expires = now + 60
        return self._offset

    def _drop(self, error: MalformedEvent) -> None:
        kind = error.kind
        if kind not in self.dropped:
            logger.warning("dropped a malformed event message (%s); further ones of this kind "
                           "are counted, not logged", error)
        self.dropped[kind] += 1

    def _receive_body(self, body: Any) -> None:
        events = body if type(body) is list else (body,)
        for item in events:
            try:
                event = check_event(item)
            except MalformedEvent as exc:
                self._drop(exc)
                continue
            self.event_count += 1
            if self._handler_errors_apart:
                try:
                    self.process(*self.event_from_message(event))
                except Exception as exc:
                    raise _HandlerFailed(exc) from exc
            else:
                self.process(*self.event_from_message(event))

    def _on_message(self, message: Any) -> None:
        self._on_content(message.content_type, message.body)

    def _on_content(self, content_type: str | None, body: bytes | str) -> None:
        """Take one message, given its content type and body (the read-ahead transports call this).

        The capture loop handles it: a transport may hand over a whole socket read at once,
        and ``limit`` and :attr:`should_stop` apply to each message.
        """
        pending = self._pending
        pending.append((content_type, body))
        if (len(pending) > self._max_pending and not self.should_stop
                and (self._stop_at is None or self._handled < self._stop_at)):
            self._handle_content(*pending.popleft())

    def _handle_content(self, content_type: str | None, body: bytes | str) -> None:
        """Handle one message: decode, check, and hand its events to the handlers."""
        self._handled += 1
        self.last_message_at = time.time()
        try:
            body = decode_body(content_type, body, self._loads)
        except MalformedEvent as exc:
            self._drop(exc)
            return
        self._receive_body(body)

    # -- capturing -----------------------------------------------------------------------

    def wakeup_workers(self, channel: Any = None) -> None:
        """Ask every worker for a heartbeat now, so they show up at once."""
        broadcast(self._connection, "heartbeat", channel=channel, settings=self.settings)

    def itercapture(self, limit: int | None = None, timeout: float | None = None,
                    wakeup: bool = True) -> Iterator[None]:
        """Consume events, yielding after each message; stop after ``limit`` messages.

        (kombu's own Redis transport reads for as long as the socket has data: beyond
        ``MAX_PENDING_STOCK`` waiting, messages are handled as they arrive, without a yield
        each; ``limit`` and :attr:`should_stop` still apply to every message.)

        ``timeout`` is how long to wait with no message before raising :class:`TimeoutError`
        (``socket.timeout``). ``wakeup`` first broadcasts the ``heartbeat`` control command.
        """
        connection = self._connection
        channel = self.channel
        consumer = Consumer(channel, queues=self.queues, on_message=self._on_message,
                            no_ack=True, accept=self.accept)
        # On evtools' AMQP and Redis transports plain messages come as (content type, body),
        # without the transport's and kombu's message objects.
        route_plain_messages = getattr(channel, "route_plain_messages", None)
        if route_plain_messages is not None:
            stop_plain_route = route_plain_messages(consumer.consume, self._on_content)
            self._max_pending = MAX_PENDING
        else:
            consumer.consume()
            stop_plain_route = _nothing_to_stop
            self._max_pending = MAX_PENDING_STOCK
        _subscribe_now(connection, channel)
        try:
            if wakeup:
                self.wakeup_workers(channel=channel)
            self._ready_count += 1
            if self.on_ready is not None:
                self.on_ready()
            yield from self._drain(connection, limit, timeout)
        finally:
            stop_plain_route()
            try:
                consumer.cancel()
            except Exception:  # the connection may be gone already; nothing to cancel then
                logger.debug("could not cancel the event consumer", exc_info=True)

    consume = itercapture

    def _drain(self, connection: Connection, limit: int | None,
               timeout: float | None) -> Iterator[None]:
        stop_at = self._stop_at = self._handled + limit if limit else None
        try:
            yield from self._drain_until(connection, stop_at, timeout)
        finally:
            self._stop_at = None

    def _drain_until(self, connection: Connection, stop_at: int | None,
                     timeout: float | None) -> Iterator[None]:
        from .transport import buffered_delivery_taker, eager_reader

        # A delivery already read ahead needs no trip through kombu's drain_events.
        take_buffered = buffered_delivery_taker(connection)
        read_now = eager_reader(connection)
        next_read_now = 0.0
        pending = self._pending
        lost_with = (OSError, *connection.connection_errors, *connection.channel_errors)
        lost: BaseException | None = None
        idle = 0.0
        next_heartbeat_check = time.monotonic() + SAFETY_INTERVAL
        while not self.should_stop:
            if stop_at is not None and self._handled >= stop_at:
                return  # reached while the transport handed messages over
            if not pending:
                if lost is not None:
                    raise lost
                wait = SAFETY_INTERVAL if not timeout else max(0.01, min(SAFETY_INTERVAL, timeout - idle))
                try:
                    if not take_buffered():
                        connection.drain_events(timeout=wait)
                except TimeoutError:
                    connection.heartbeat_check()
                    idle += wait
                    if timeout and idle >= timeout:
                        raise
                    continue
                except lost_with as exc:
                    if self.should_stop and isinstance(exc, OSError):
                        return
                    if not pending:
                        raise
                    lost = exc  # the messages read before the loss are handled first
                    continue
                idle = 0.0
                if not pending:  # a frame or reply that was no message for this receiver
                    continue
            self._handle_content(*pending.popleft())
            handled = self._handled
            if (read_now is not None and not handled % EAGER_READ_EVERY and lost is None
                    and len(pending) < EAGER_READ_LIMIT and not self.should_stop
                    and time.monotonic() >= next_read_now):
                next_read_now = time.monotonic() + EAGER_READ_SECONDS
                try:
                    read_now()
                except lost_with as exc:
                    lost = exc  # raised once the messages read before it are handled
            if not handled % HEARTBEAT_CHECK_EVERY and time.monotonic() >= next_heartbeat_check \
                    and lost is None:
                # Busy for a while: never idle, so the check above never ran, and a broker
                # that expects our heartbeats would take the connection for dead.
                next_heartbeat_check = time.monotonic() + SAFETY_INTERVAL
                connection.heartbeat_check()
            yield None
            if stop_at is not None and handled >= stop_at:
                return

    def capture(self, limit: int | None = None, timeout: float | None = None,
                wakeup: bool = True) -> None:
        """Consume events until ``limit`` messages, ``timeout`` idle seconds, or :attr:`should_stop`."""
        for _ in self.itercapture(limit=limit, timeout=timeout, wakeup=wakeup):
            pass

    def run(self, wakeup: bool = True,
            on_connection_lost: Callable[[Exception], None] | None = None,
            on_connection_error: Callable[[Exception, float], None] | None = None,
            interval_max: float = 32.0,
            on_exchange_missing: Callable[[str], None] | None = None) -> None:
        """Capture until :attr:`should_stop`, reconnecting with capped backoff when the broker is lost.

        ``on_connection_lost(exc)`` is called when an established connection drops;
        ``on_connection_error(exc, interval)`` before each wait while reconnecting.
        A user that may not declare the event exchange, started before any worker declared
        it, waits for it: ``on_exchange_missing(message)`` (default: a warning in the log) is
        told once, then the exchange is looked for every ``EXCHANGE_POLL_INTERVAL`` seconds.
        """
        if self._channel is not None:
            raise ConfigurationError("run() reconnects, so it needs a Connection, not a channel")
        connection = self._connection
        errors = connection.connection_errors + connection.channel_errors
        # A handler's own OSError (a closed pipe, a full disk) is not a lost connection.
        self._handler_errors_apart = True
        failures_before_ready = 0
        told_missing_at: int | None = None  # the ready count when the missing exchange was told
        try:
            while not self.should_stop:
                if failures_before_ready > 1:
                    # failing again before consuming (a refused queue, a broker half up):
                    # back off instead of reconnecting in a tight loop
                    self._pause(min(interval_max, 0.25 * 2 ** failures_before_ready))
                ready_count = self._ready_count
                try:
                    connection.ensure_connection(errback=on_connection_error, max_retries=None,
                                                 interval_start=1, interval_step=2,
                                                 interval_max=interval_max)
                    self.capture(wakeup=wakeup)
                except _HandlerFailed as failed:
                    raise failed.cause from None
                except errors as exc:
                    if self.should_stop:
                        return
                    if self._permission_refused(exc):
                        self._reset_connection()
                        continue
                    message = self._waiting_for_exchange(exc)
                    if message is not None:
                        if told_missing_at != self._ready_count:
                            told_missing_at = self._ready_count
                            (on_exchange_missing or logger.warning)(message)
                        self._reset_connection()
                        failures_before_ready = 0
                        self._pause(EXCHANGE_POLL_INTERVAL)
                        continue
                    failures_before_ready = (failures_before_ready + 1
                                             if ready_count == self._ready_count else 1)
                    if on_connection_lost is not None:
                        on_connection_lost(exc)
                    self._reset_connection()
        finally:
            self._handler_errors_apart = False

    def _pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if :attr:`should_stop` is set meanwhile."""
        deadline = time.monotonic() + seconds
        while not self.should_stop:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.2))

    def _permission_refused(self, exc: Exception) -> bool:
        """On a missing permission: use the exchange undeclared once, else raise one clear error.

        Declaring an existing exchange needs configure permission on it, which a monitoring
        user has no reason to hold: the workers declared it, so binding to it is enough.
        """
        refused = access_refused(exc)
        if refused is None:
            return False
        if (refused["method"] == "Exchange.declare" and refused["name"] == self.exchange.name
                and not self.exchange.no_declare):
            logger.info("no configure permission on exchange %r: binding to it as the workers "
                        "declared it", self.exchange.name)
            self.exchange.no_declare = True
            self._declare_refused = refused
            return True
        raise PermissionRefused(permission_message(refused)) from None

    def _waiting_for_exchange(self, exc: Exception) -> str | None:
        """The line to show when our exchange is missing and we may not declare it, else None."""
        missing = exchange_missing(exc)
        if (missing is None or missing["name"] != self.exchange.name
                or self._declare_refused is None):
            return None
        return missing_exchange_message(missing, self._declare_refused)

    def _reset_connection(self) -> None:
        try:
            self._connection.close()
        except Exception:  # closing a dead connection may fail; it is being replaced anyway
            logger.debug("error while closing a lost connection", exc_info=True)
