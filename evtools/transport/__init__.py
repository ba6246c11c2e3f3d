"""Connections to the broker, on evtools' read-ahead transports where they can be used.

evtools has faster variants of kombu's ``amqp://``, ``redis://`` and ``filesystem://``
transports (:mod:`.amqp`, :mod:`.redis`, :mod:`.filesystem`). They use private names of
py-amqp, kombu and redis-py, so they are imported only when a connection is made, and only
after :func:`.probe.problem` has found everything they use, in the versions they were tested
with. When the probe finds a problem, or ``EVTOOLS_FAST_TRANSPORTS=0`` is set, kombu's own
transport is used, and one line at INFO level (logger ``evtools.transport``) says so, once
per process. Events, their order and what the receiver counts are the same either way.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
from collections.abc import Callable
from functools import cache
from typing import Any

from ..errors import BrokerError

__all__ = ("FAST_TRANSPORTS_VAR", "buffered_delivery_taker", "connect", "eager_reader",
           "fast_transport")

logger = logging.getLogger(__name__)

#: Set to 0 to use kombu's own transports even where evtools' read-ahead ones would work.
FAST_TRANSPORTS_VAR = "EVTOOLS_FAST_TRANSPORTS"

#: URL scheme -> the read-ahead transport for it (a module of this package).
FAST_KINDS = {"amqp": "amqp", "pyamqp": "amqp", "amqps": "amqp", "redis": "redis",
              "filesystem": "filesystem"}

#: Schemes that always speak TLS (``ssl=`` turns it on for the others).
TLS_SCHEMES = frozenset({"amqps", "rediss"})

#: The read-ahead transports that speak TLS too (the Redis one reads plain sockets only).
TLS_KINDS = frozenset({"amqp"})

#: Schemes whose kombu transport needs the ``redis`` client package.
REDIS_SCHEMES = frozenset({"redis", "rediss", "sentinel"})


@cache
def _say_once(message: str) -> None:
    logger.info("%s", message)


def _fast_transports_off() -> bool:
    return os.environ.get(FAST_TRANSPORTS_VAR, "").strip() == "0"


def fast_transport(scheme: str) -> type | None:
    """evtools' read-ahead transport class for ``scheme``; None for kombu's own transport."""
    kind = FAST_KINDS.get(scheme)
    if kind is None:
        return None
    if _fast_transports_off():
        _say_once(f"{FAST_TRANSPORTS_VAR}=0: using kombu's own transports")
        return None
    from . import probe

    reason = probe.problem(kind)
    if reason is None:
        try:
            module = importlib.import_module(f"{__name__}.{kind}")
            return module.SSLTransport if scheme in TLS_SCHEMES else module.Transport
        except Exception as exc:  # noqa: BLE001 - whatever breaks, kombu's transport still works
            reason = f"importing it failed ({type(exc).__name__}: {exc})"
    _say_once(f"read-ahead {kind} transport not used: {reason}; using kombu's own {kind} "
              "transport")
    return None


def _scheme(url: str) -> str:
    return url.partition("://")[0].split("+", 1)[0].lower()


def connect(url: str, transport_options: dict[str, Any] | None = None,
            **options: Any) -> Any:
    """A :class:`kombu.Connection` to ``url`` (not connected yet), on the fastest usable transport.

    ``options`` go to :class:`kombu.Connection` (``heartbeat=``, ``connect_timeout=``, ...);
    an explicit ``transport=`` wins. ``filesystem://`` gets evtools' embedded broker folder
    unless ``transport_options`` name other folders. Raises
    :class:`~evtools.errors.BrokerError` when the URL needs a client that is not installed.
    """
    from kombu import Connection

    scheme = _scheme(url)
    transport_options = dict(transport_options or {})
    if scheme in REDIS_SCHEMES and importlib.util.find_spec("redis") is None:
        raise BrokerError("the redis transport needs the redis client: "
                          "pip install 'evtools[redis]'")
    if scheme == "filesystem":
        from . import fsbroker

        transport_options = {**fsbroker.transport_options(), **transport_options}
    if "transport" not in options and (scheme in TLS_SCHEMES or options.get("ssl")) \
            and FAST_KINDS.get(scheme) not in TLS_KINDS:
        # The read-ahead Redis transport reads plain TCP sockets; kombu's own speaks TLS.
        _say_once(f"TLS: using kombu's own {scheme} transport (the read-ahead one reads "
                  "plain TCP only)")
    elif "transport" not in options:
        fast = fast_transport(scheme)
        if fast is not None:
            options["transport"] = fast
    return Connection(url, transport_options=transport_options, **options)


def eager_reader(connection: Any) -> Callable[[], None] | None:
    """For a connected kombu connection: a function that takes what the broker has already sent
    without waiting (the messages reach the consumer's callback), or None where that is not
    needed: RabbitMQ keeps a slow consumer's backlog in its queue, while Redis drops a
    subscriber 32 MB behind, so on evtools' Redis transport the receiver reads ahead of what it
    has handled and a burst waits in its memory instead.
    """
    if not getattr(connection.transport, "reads_eagerly", False):
        return None

    def read_now() -> None:
        try:
            connection.drain_events(timeout=0)
        except TimeoutError:  # nothing there
            pass

    return read_now


def _nothing_buffered() -> bool:
    return False


def buffered_delivery_taker(connection: Any) -> Callable[[], bool]:
    """For a connected kombu connection: a function that hands on one delivery already read
    ahead and returns True, or returns False at once (nothing buffered, or not our transport).
    """
    take = getattr(connection.connection, "take_buffered_delivery", None)
    return take if callable(take) else _nothing_buffered
