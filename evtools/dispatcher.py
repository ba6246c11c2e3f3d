"""Sending events: the publishing half, wire-compatible with Celery workers."""

from __future__ import annotations

import os
import socket
import threading
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from typing import Any

from kombu import Connection, Producer
from kombu.clocks import LamportClock

from .config import Settings, resolve_settings
from .errors import ConfigurationError
from .event import Event, get_exchange, group_from, routing_key_for
from .tz import utcoffset as local_utcoffset

__all__ = ("EventDispatcher", "anon_nodename")

#: Transports that cannot carry events at all.
DISABLED_TRANSPORTS = frozenset({"sql"})


def anon_nodename(prefix: str = "gen") -> str:
    """Return the node name of a process that is not a worker: ``gen<pid>@<host>``."""
    return f"{prefix}{os.getpid()}@{socket.gethostname()}"


class EventDispatcher:
    """Publish events to the event exchange, as ``celery.events.EventDispatcher`` does.

    ``groups`` limits what :meth:`send` publishes (``{"task"}``); events of a group in
    ``buffer_group`` are collected and published as one *list* on ``<group>.multi``
    once ``buffer_limit`` are waiting, or on :meth:`flush`. With ``buffer_while_offline``
    an event that cannot be published is kept until the next :meth:`flush`.
    """

    DISABLED_TRANSPORTS = DISABLED_TRANSPORTS

    def __init__(self, connection: Connection | None = None, hostname: str | None = None,
                 enabled: bool = True, channel: Any = None, buffer_while_offline: bool = True,
                 app: Any = None, serializer: str | None = None,
                 groups: Iterable[str] | None = None, delivery_mode: int = 1,
                 buffer_group: Iterable[str] | None = None, buffer_limit: int = 24,
                 on_send_buffered: Callable[[], None] | None = None,
                 clock: LamportClock | None = None, settings: Settings | None = None) -> None:
        if settings is None:
            settings = resolve_settings(app=app, environ={}) if app is not None else Settings()
        self.serializer = serializer or settings.event_serializer
        if self.serializer != "json":
            raise ConfigurationError(f"serializer {self.serializer!r} is not supported: events are JSON")
        if connection is None and channel is not None:
            connection = channel.connection.client
        if connection is None:
            connection = Connection(settings.broker_url,
                                    transport_options=settings.broker_transport_options)
        self.app = app
        self.connection = connection
        self.channel = channel
        self.hostname = hostname or anon_nodename()
        self.pid = os.getpid()
        self.buffer_while_offline = buffer_while_offline
        self.buffer_group = frozenset(buffer_group or ())
        self.buffer_limit = buffer_limit
        self.on_send_buffered = on_send_buffered
        self.groups = set(groups or ())
        self.delivery_mode = delivery_mode
        self.clock = clock if clock is not None else LamportClock()
        self.headers = {"hostname": self.hostname}
        self.exchange = get_exchange(connection, name=settings.event_exchange)
        self.on_enabled: set[Callable[[], None]] = set()
        self.on_disabled: set[Callable[[], None]] = set()
        self.mutex = threading.Lock()
        self.producer: Producer | None = None
        self._closed = False
        self._outbound_buffer: deque[tuple[Any, str]] = deque()
        self._group_buffer: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        self.enabled = enabled
        if connection.transport.driver_type in self.DISABLED_TRANSPORTS:
            self.enabled = False
        if self.enabled:
            self.enable()

    def __enter__(self) -> EventDispatcher:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def enable(self) -> None:
        """Start publishing (creates the producer) and call the ``on_enabled`` callbacks."""
        with self.mutex:
            self.producer = Producer(self.channel or self.connection, exchange=self.exchange,
                                     serializer=self.serializer, auto_declare=False)
            self._closed = False
            self.enabled = True
        for callback in self.on_enabled:
            callback()

    def disable(self) -> None:
        """Stop publishing and call the ``on_disabled`` callbacks."""
        if self.enabled:
            self.enabled = False
            self.close()
            for callback in self.on_disabled:
                callback()

    def _stamp(self, type: str, fields: dict[str, Any], blind: bool = False,
               utcoffset: Callable[[], float] = local_utcoffset,
               event_factory: Callable[..., dict[str, Any]] = Event) -> dict[str, Any]:
        """Return the event with this sender's hostname, utcoffset, pid and clock."""
        clock = None if blind else self.clock.forward()
        return event_factory(type, hostname=self.hostname, utcoffset=utcoffset(), pid=self.pid,
                             clock=clock, **fields)

    def publish(self, type: str, fields: dict[str, Any], producer: Producer | None,
                blind: bool = False, Event: Callable[..., dict[str, Any]] = Event,  # noqa: N803
                **kwargs: Any) -> None:
        """Publish one event with a producer of the caller's (``retry``/``retry_policy`` allowed)."""
        event = self._stamp(type, fields, blind=blind, event_factory=Event)
        with self.mutex:
            self._publish(event, producer, routing_key_for(type), **kwargs)

    def _publish(self, body: Any, producer: Producer | None, routing_key: str,
                 retry: bool = False, retry_policy: dict[str, Any] | None = None) -> None:
        if producer is None:
            return
        try:
            producer.publish(body, routing_key=routing_key, exchange=self.exchange.name,
                             retry=retry, retry_policy=retry_policy, declare=[self.exchange],
                             serializer=self.serializer, headers=self.headers,
                             delivery_mode=self.delivery_mode)
        except Exception:
            if not self.buffer_while_offline:
                raise
            self._outbound_buffer.append((body, routing_key))

    def send(self, type: str, blind: bool = False, utcoffset: Callable[[], float] = local_utcoffset,
             retry: bool = False, retry_policy: dict[str, Any] | None = None,
             Event: Callable[..., dict[str, Any]] = Event,  # noqa: N803
             **fields: Any) -> None:
        """Send an event of ``type`` with ``fields``, unless disabled or filtered out by ``groups``."""
        if not self.enabled:
            return
        group = group_from(type)
        if self.groups and group not in self.groups:
            return
        if group in self.buffer_group:
            self._buffer(group, self._stamp(type, fields, utcoffset=utcoffset, event_factory=Event))
            return
        event = self._stamp(type, fields, blind=blind, utcoffset=utcoffset, event_factory=Event)
        with self.mutex:
            if self._closed:
                return
            self._publish(event, self.producer, routing_key_for(type), retry=retry,
                          retry_policy=retry_policy)

    def _buffer(self, group: str, event: dict[str, Any]) -> None:
        waiting = self._group_buffer[group]
        waiting.append(event)
        if len(waiting) >= self.buffer_limit:
            self.flush()
        elif self.on_send_buffered:
            self.on_send_buffered()

    def flush(self, errors: bool = True, groups: bool = True) -> None:
        """Publish what is waiting: events kept while offline, then group buffers as lists."""
        with self.mutex:
            if self._closed:
                return
            if errors:
                pending = list(self._outbound_buffer)
                self._outbound_buffer.clear()
                for body, routing_key in pending:
                    self._publish(body, self.producer, routing_key)
            if groups:
                for group, waiting in self._group_buffer.items():
                    if waiting:
                        batch = list(waiting)
                        self._publish(batch, self.producer, f"{group}.multi")
                        del waiting[:len(batch)]

    def extend_buffer(self, other: EventDispatcher) -> None:
        """Take over the events another dispatcher kept while offline."""
        self._outbound_buffer.extend(other._outbound_buffer)

    def close(self) -> None:
        """Stop this dispatcher's own publishing; buffers are kept for a later enable/flush."""
        with self.mutex:
            self._closed = True
            self.producer = None

    @property
    def publisher(self) -> Producer | None:
        """The producer in use (Celery's old name for :attr:`producer`)."""
        return self.producer

    @publisher.setter
    def publisher(self, producer: Producer | None) -> None:
        self.producer = producer
