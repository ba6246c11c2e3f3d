"""What an event is: a dict with a ``type``, its group, and the exchange events travel on."""

from __future__ import annotations

import time
from typing import Any

from kombu import Connection, Exchange

__all__ = ("Event", "EVENT_EXCHANGE_NAME", "event_exchange", "get_exchange", "group_from",
           "routing_key_for")

EVENT_EXCHANGE_NAME = "celeryev"

#: Transports whose exchanges are pub/sub channels: there the event exchange is fanout.
FANOUT_TRANSPORTS = frozenset({"redis", "gcpubsub"})

#: The event exchange as Celery declares it; use :func:`get_exchange` for a connection.
event_exchange = Exchange(EVENT_EXCHANGE_NAME, type="topic")


def Event(type: str, _fields: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:  # noqa: N802
    """Return a new event dict of ``type``; ``timestamp`` is set to now unless given."""
    event = dict(_fields, **fields) if _fields else fields
    if "timestamp" not in event:
        event["timestamp"] = time.time()
    event["type"] = type
    return event


def group_from(type: str) -> str:
    """Return the group of an event type: ``'task'`` for ``'task-sent'``."""
    return type.split("-", 1)[0]


def routing_key_for(type: str) -> str:
    """Return the routing key an event of ``type`` is published with: ``task.sent``."""
    return type.replace("-", ".")


def get_exchange(conn: Connection, name: str = EVENT_EXCHANGE_NAME) -> Exchange:
    """Return the event exchange for ``conn``: topic, but fanout on Redis as Celery workers use it."""
    kind = "fanout" if conn.transport.driver_type in FANOUT_TRANSPORTS else "topic"
    return Exchange(name, type=kind)
