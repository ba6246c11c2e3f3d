"""Broker URLs: validate them, hide their passwords, open connections with clear errors."""

from __future__ import annotations

import importlib.util
import re
from typing import Any

from kombu import Connection
from kombu.transport import resolve_transport

from .. import transport
from ..config import Settings
from ..errors import BrokerError

__all__ = ("check_url", "connect", "connection_for", "mask_passwords", "safe_url")

_PASSWORD_IN_URL = re.compile(r"(://[^:/@\s]*:)[^@\s]+@")


def mask_passwords(text: str) -> str:
    """Replace the password of every URL in ``text`` with ``**``."""
    return _PASSWORD_IN_URL.sub(r"\1**@", text)


def safe_url(url: str) -> str:
    """Return ``url`` with its password hidden, fit for messages and process titles."""
    return mask_passwords(url)


def check_url(url: str) -> str:
    """Return the transport name of ``url``; raise :class:`BrokerError` naming what is wrong."""
    shown = safe_url(url)
    scheme, sep, _ = url.partition("://")
    if not sep or not scheme:
        raise BrokerError(f"malformed broker URL {shown!r}: expected transport://[user:password@]"
                          "host[:port]/[vhost], e.g. redis://localhost:6379/0")
    scheme = scheme.split("+", 1)[0].lower()
    # before kombu imports its redis transport, which fails without the client
    if scheme in transport.REDIS_SCHEMES and importlib.util.find_spec("redis") is None:
        raise BrokerError("the redis transport needs the redis client: "
                          "pip install 'evtools[redis]'")
    try:
        resolve_transport(scheme)
    except KeyError:
        raise BrokerError(f"unknown broker transport {scheme!r} in {shown!r} (try amqp://, "
                          "redis://, filesystem:// or memory://)") from None
    try:
        Connection(url).port  # noqa: B018 - parsing the URL is the check
    except ValueError as exc:
        raise BrokerError(f"malformed broker URL {shown!r}: {exc}") from None
    return scheme


def connection_for(settings: Settings, **options: Any) -> Connection:
    """Return a (not yet connected) connection to the broker ``settings`` name.

    On evtools' read-ahead transport where its probe allows it (see :mod:`evtools.transport`).
    """
    check_url(settings.broker_url)
    try:
        return transport.connect(settings.broker_url,
                                 transport_options=settings.broker_transport_options, **options)
    except (ImportError, ValueError, KeyError) as exc:
        raise BrokerError(f"cannot use broker {safe_url(settings.broker_url)!r}: {exc}") from None


def connect(settings: Settings, timeout: float = 5.0) -> Connection:
    """Return a connection that is established now, or raise :class:`BrokerError` saying why not."""
    connection = connection_for(settings, connect_timeout=timeout)
    try:
        connection.ensure_connection(max_retries=1, interval_start=0, timeout=timeout)
    except Exception as exc:  # kombu raises transport-specific errors; all mean "cannot connect"
        connection.release()
        reason = str(exc) or type(exc).__name__
        raise BrokerError(f"cannot connect to {safe_url(settings.broker_url)}: {reason}") from None
    return connection
