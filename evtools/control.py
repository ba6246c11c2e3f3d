"""Remote control of workers over kombu's pidbox, speaking Celery's control protocol.

Each command goes to the fanout exchange ``<control_exchange>.pidbox`` (``celery.pidbox``) as
Celery's ``app.control`` sends it; replies come back through ``reply.<control_exchange>.pidbox``
into a reply queue of our own, which is deleted once the replies are in. Replies are returned as
Celery returns them: ``[{hostname: reply}, ...]``, a reply being ``{"ok": ...}`` or
``{"error": ...}``. Only JSON is sent or accepted; a reply in another format is logged and
skipped. Waiting for replies drains the whole connection, so give these functions a connection
that nothing else consumes from.
"""

from __future__ import annotations

import logging
import math
import re
import signal as signals
import time
from collections.abc import Iterable
from typing import Any

from kombu import Connection, Consumer, Producer, Queue
from kombu.exceptions import ContentDisallowed, DecodeError
from kombu.message import Message
from kombu.pidbox import Mailbox
from kombu.utils.uuid import uuid

from .config import Settings
from .errors import ConfigurationError

__all__ = ("Reply", "mailbox_for", "broadcast", "ping", "heartbeat", "enable_events",
           "disable_events", "revoke", "rate_limit", "check_destination", "check_task_ids",
           "check_task_name", "check_rate", "check_signal")

logger = logging.getLogger(__name__)

#: One worker's answer, as Celery returns it: ``{hostname: {"ok": ...} or {"error": ...}}``.
Reply = dict[str, Any]

#: A rate as Celery's workers parse it: a number of tasks, per second unless /s, /m or /h.
_RATE = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:/[smh])?")
_SIGNAL_NAMES = frozenset(signals.Signals.__members__)


def mailbox_for(settings: Settings | None = None) -> Mailbox:
    """Return the mailbox Celery workers listen on: exchange ``<control_exchange>.pidbox``."""
    settings = settings or Settings()
    return Mailbox(settings.control_exchange, type="fanout", accept=["json"], serializer="json")


# -- checking arguments before anything is sent ----------------------------------------------

def check_destination(destination: str | Iterable[str] | None) -> list[str] | None:
    """Return the hostnames to address (``None``: every worker); refuse an empty list."""
    if destination is None:
        return None
    # A bare string would reach workers as a string, and each would test `hostname in it`.
    names = [destination] if isinstance(destination, str) else list(destination)
    if not names or not all(isinstance(name, str) and name.strip() for name in names):
        raise ConfigurationError("destination must name at least one worker (w1@host), "
                                 "or be None for every worker")
    return [name.strip() for name in names]


def check_task_ids(task_id: str | Iterable[str]) -> list[str]:
    """Return the task ids to revoke; refuse an empty id."""
    ids = [task_id] if isinstance(task_id, str) else list(task_id)
    if not ids or not all(isinstance(one, str) and one.strip() for one in ids):
        raise ConfigurationError("a task id cannot be empty")
    return [one.strip() for one in ids]


def check_task_name(task_name: str) -> str:
    """Return the task name (``proj.tasks.add``); refuse an empty one."""
    if not isinstance(task_name, str) or not task_name.strip():
        raise ConfigurationError("a task name cannot be empty")
    return task_name.strip()


def check_rate(rate: str | float) -> str | float:
    """Return ``rate`` as workers will parse it (``10/m``, ``2/s``, ``100/h``, ``5``, ``0``)."""
    if isinstance(rate, (int, float)) and not isinstance(rate, bool):
        if math.isfinite(rate) and rate >= 0:
            return rate
    elif isinstance(rate, str) and _RATE.fullmatch(rate.strip()):
        return rate.strip()
    raise ConfigurationError(f"invalid rate limit {rate!r}: expected tasks per second, minute or "
                             "hour, like 10/s, 10/m or 10/h (a plain number is per second; "
                             "0 removes the limit)")


def check_signal(name: str | int) -> str:
    """Return the signal's name as workers expect it (``SIGKILL`` for ``kill``, ``KILL`` or 9)."""
    text = str(name).strip().upper()
    if text.isdigit():
        try:
            return signals.Signals(int(text)).name
        except ValueError:
            pass
    else:
        full = text if text.startswith("SIG") else f"SIG{text}"
        if full in _SIGNAL_NAMES:
            return full
    raise ConfigurationError(f"unknown signal {name!r}: try TERM, KILL, INT, HUP or USR1")


# -- sending and collecting ------------------------------------------------------------------

def _command_message(command: str, arguments: dict[str, Any],
                     destination: list[str] | None) -> dict[str, Any]:
    return {"method": command, "arguments": arguments, "destination": destination,
            "pattern": None, "matcher": None}


def _publish(mailbox: Mailbox, channel: Any, message: dict[str, Any], timeout: float) -> None:
    Producer(channel, auto_declare=False).publish(
        message, exchange=mailbox.exchange.name, declare=[mailbox.exchange], serializer="json",
        headers={"clock": mailbox.clock.forward(), "expires": time.time() + timeout})


def _collect(connection: Connection, channel: Any, queue: Queue, ticket: str,
             limit: int | None, timeout: float) -> list[Reply]:
    """Gather the replies to ``ticket`` until ``limit`` came or none came for ``timeout``."""
    replies: list[Reply] = []

    def on_message(message: Message) -> None:
        if message.headers.get("ticket") != ticket:
            return  # a late reply to an earlier call that used this queue
        try:
            body = message.decode()
        except (ContentDisallowed, DecodeError) as exc:
            logger.warning("ignoring a reply that is not JSON: %s", exc)
            return
        if isinstance(body, dict):
            replies.append(body)

    with Consumer(channel, [queue], accept=["json"], no_ack=True, auto_declare=False,
                  on_message=on_message):
        while limit is None or len(replies) < limit:
            try:
                connection.drain_events(timeout=timeout)
            except TimeoutError:
                break
    return replies


def _delete_quietly(queue: Queue, connection: Connection) -> None:
    try:
        queue.delete()
    except connection.connection_errors + connection.channel_errors as exc:
        # The broker went away or dropped the queue itself (auto-delete, expiry): nothing left.
        logger.debug("could not delete reply queue %s: %r", queue.name, exc)


def _call(connection: Connection, mailbox: Mailbox, channel: Any, message: dict[str, Any],
          limit: int | None, timeout: float) -> list[Reply]:
    queue = mailbox.get_reply_queue()(channel)
    ticket = uuid()
    queue.declare()
    try:
        _publish(mailbox, channel, {**message, "ticket": ticket, "reply_to": {
            "exchange": mailbox.reply_exchange.name, "routing_key": mailbox.oid}}, timeout)
        return _collect(connection, channel, queue, ticket, limit, timeout)
    finally:
        _delete_quietly(queue, connection)


def broadcast(connection: Connection, command: str, arguments: dict[str, Any] | None = None,
              destination: list[str] | None = None, reply: bool = False, timeout: float = 1.0,
              limit: int | None = None, channel: Any = None,
              settings: Settings | None = None) -> list[Reply] | None:
    """Send ``command`` to every worker (or those in ``destination``); return replies if asked.

    With ``reply``, waits until every destination replied (or ``limit`` replies came), or until
    no reply came for ``timeout`` seconds; the reply queue is deleted before returning.
    """
    destination = check_destination(destination)
    if limit is None and destination:
        limit = len(set(destination))
    mailbox = mailbox_for(settings)(connection)
    message = _command_message(command, dict(arguments or {}), destination)
    own_channel = channel is None
    channel = connection.channel() if own_channel else channel
    try:
        if not reply:
            _publish(mailbox, channel, message, timeout)
            return None
        return _call(connection, mailbox, channel, message, limit, timeout)
    finally:
        if own_channel:
            channel.close()


def _replies(connection: Connection, command: str, arguments: dict[str, Any],
             destination: list[str] | None, timeout: float,
             settings: Settings | None) -> list[Reply]:
    replies = broadcast(connection, command, arguments, destination=destination, reply=True,
                        timeout=timeout, settings=settings)
    return replies or []


# -- Celery's control commands ---------------------------------------------------------------

def ping(connection: Connection, destination: list[str] | None = None, timeout: float = 1.0,
         settings: Settings | None = None) -> list[Reply]:
    """Ask workers to answer; each live one replies ``{"ok": "pong"}``."""
    return _replies(connection, "ping", {}, destination, timeout, settings)


def heartbeat(connection: Connection, destination: list[str] | None = None,
              timeout: float = 1.0, settings: Settings | None = None) -> list[Reply]:
    """Ask workers to send a ``worker-heartbeat`` event now; no reply is asked for, so ``[]``."""
    broadcast(connection, "heartbeat", {}, destination=destination, reply=False,
              timeout=timeout, settings=settings)
    return []


def enable_events(connection: Connection, destination: list[str] | None = None,
                  timeout: float = 1.0, settings: Settings | None = None) -> list[Reply]:
    """Turn task events on, as if the workers had been started with ``-E``."""
    return _replies(connection, "enable_events", {}, destination, timeout, settings)


def disable_events(connection: Connection, destination: list[str] | None = None,
                   timeout: float = 1.0, settings: Settings | None = None) -> list[Reply]:
    """Turn task events off (worker events, heartbeats included, keep flowing)."""
    return _replies(connection, "disable_events", {}, destination, timeout, settings)


def revoke(connection: Connection, task_id: str | Iterable[str], terminate: bool = False,
           signal: str | int = "SIGTERM", destination: list[str] | None = None,
           timeout: float = 1.0, settings: Settings | None = None) -> list[Reply]:
    """Revoke tasks by id; with ``terminate``, also kill a running one with ``signal``."""
    ids = check_task_ids(task_id)
    arguments = {"task_id": ids[0] if len(ids) == 1 else ids, "terminate": bool(terminate),
                 "signal": check_signal(signal)}
    return _replies(connection, "revoke", arguments, destination, timeout, settings)


def rate_limit(connection: Connection, task_name: str, rate: str | float,
               destination: list[str] | None = None, timeout: float = 1.0,
               settings: Settings | None = None) -> list[Reply]:
    """Set the rate limit of a task type (``10/m``; ``0`` lifts it)."""
    arguments = {"task_name": check_task_name(task_name), "rate_limit": check_rate(rate)}
    return _replies(connection, "rate_limit", arguments, destination, timeout, settings)
