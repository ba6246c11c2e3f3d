"""The synthetic stream as workers put it on the wire: JSON bodies, one event each or task.multi lists."""

from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import islice
from typing import Any

from .stream import task_events

__all__ = ("WireMessage", "wire_events", "wire_messages", "SHAPES", "MULTI_SIZE")

#: How a prefork worker groups its task events: one list of about this many per message.
MULTI_SIZE = 8

SHAPES = ("single", "multi")

#: Fields a receiver adds on arrival; they are not on the wire.
_RECEIVER_FIELDS = ("local_received",)


@dataclass(frozen=True, slots=True)
class WireMessage:
    """One message for the event exchange: its routing key, JSON body and how many events it holds."""

    routing_key: str
    body: bytes
    events: int


def wire_events(count: int, seed: int = 1) -> list[dict[str, Any]]:
    """Return the first ``count`` events of the stream as a worker sends them (no receiver fields)."""
    tasks = count // 4 + 1  # four events per task, plus heartbeats: always enough
    events = []
    for event in islice(task_events(tasks, seed), count):
        for key in _RECEIVER_FIELDS:
            event.pop(key, None)
        events.append(event)
    return events


def _encode(body: Any) -> bytes:
    return json.dumps(body, separators=(", ", ": ")).encode()


def _single(events: list[dict[str, Any]]) -> list[WireMessage]:
    return [WireMessage(event["type"].replace("-", "."), _encode(event), 1) for event in events]


def _multi(events: list[dict[str, Any]], size: int) -> list[WireMessage]:
    """Task events in per-worker lists of ``size`` (as a worker's buffer flushes); others alone."""
    messages: list[WireMessage] = []
    buffers: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        if not event["type"].startswith("task-"):
            messages.append(WireMessage(event["type"].replace("-", "."), _encode(event), 1))
            continue
        buffer = buffers.setdefault(event["hostname"], [])
        buffer.append(event)
        if len(buffer) >= size:
            messages.append(WireMessage("task.multi", _encode(buffer), len(buffer)))
            buffers[event["hostname"]] = []
    for buffer in buffers.values():
        if buffer:
            messages.append(WireMessage("task.multi", _encode(buffer), len(buffer)))
    return messages


def wire_messages(count: int, shape: str = "single", seed: int = 1) -> list[WireMessage]:
    """Return ``count`` events of the stream as messages of ``shape`` (``single`` or ``multi``)."""
    events = wire_events(count, seed)
    if shape == "single":
        return _single(events)
    if shape == "multi":
        return _multi(events, MULTI_SIZE)
    raise ValueError(f"unknown message shape {shape!r} (expected one of {SHAPES})")
