"""Broker URLs: validate them, hide their passwords, open connections with clear errors."""

from __future__ import annotations

import importlib.util
import logging
import re
import ssl
from typing import Any

from kombu import Connection
from kombu.transport import resolve_transport

from .. import transport
from ..config import Settings
from ..errors import BrokerError, ConfigurationError, UnsupportedBroker

__all__ = ("access_refused", "check_url", "connect", "connection_for", "exchange_missing",
           "mask_passwords", "missing_exchange_message", "permission_message",
           "refuse_redis_cluster", "safe_url", "ssl_options_for")

logger = logging.getLogger(__name__)

#: Transports that need the ``redis`` client package.
REDIS_SCHEMES = transport.REDIS_SCHEMES

#: Transports that cannot carry Celery events, and why (checked before connecting).
CANNOT_CARRY_EVENTS = {
    "sqs": "Amazon SQS has no fanout or topic exchange, so workers' events cannot be broadcast "
           "to a monitor (Celery's own monitors do not work on SQS either)",
    "rediscluster": "Redis Cluster shards keys by slot and kombu's pub/sub fanout does not span "
                    "slots, so events cannot be received there",
}

#: What ``ssl_cert_reqs=...`` may say, in Celery's and redis-py's words.
CERT_REQS = {"none": ssl.CERT_NONE, "cert_none": ssl.CERT_NONE,
             "optional": ssl.CERT_OPTIONAL, "cert_optional": ssl.CERT_OPTIONAL,
             "required": ssl.CERT_REQUIRED, "cert_required": ssl.CERT_REQUIRED}

#: TLS option names common to both families; Redis spells them with an ``ssl_`` prefix.
_SSL_KEYS = ("cert_reqs", "ca_certs", "certfile", "keyfile", "check_hostname")

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
    if scheme in CANNOT_CARRY_EVENTS:
        raise UnsupportedBroker(f"{shown}: {CANNOT_CARRY_EVENTS[scheme]}")
    # before kombu imports its redis transport, which fails without the client
    if scheme in REDIS_SCHEMES and importlib.util.find_spec("redis") is None:
        raise BrokerError("the redis transport needs the redis client: "
                          "pip install 'evtools[redis]'")
    try:
        transport_cls = resolve_transport(scheme)
    except KeyError:
        raise BrokerError(f"unknown broker transport {scheme!r} in {shown!r} (try amqp://, "
                          "redis://, filesystem:// or memory://)") from None
    except ImportError as exc:  # a transport whose client library is missing
        raise BrokerError(f"the {scheme} transport cannot be loaded: {exc}") from None
    exchange_types = getattr(getattr(transport_cls, "implements", None), "exchange_type", None)
    if exchange_types is not None and not {"fanout", "topic"} & set(exchange_types):
        raise UnsupportedBroker(f"{shown}: the {scheme} transport has no fanout or topic exchange, "
                                "so workers' events cannot be broadcast to a monitor")
    try:
        # parsing the URL is the check (ssl given: no warning about rediss:// without options here)
        Connection(url, ssl=scheme == "rediss").port  # noqa: B018
    except ValueError as exc:
        raise BrokerError(f"malformed broker URL {shown!r}: {exc}") from None
    return scheme


#: Which RabbitMQ permission each refused method needs, by the kind of resource refused.
_PERMISSION_NEEDED = {
    ("Exchange.declare", "exchange"): "configure",
    ("Queue.declare", "queue"): "configure",
    ("Queue.bind", "queue"): "write",
    ("Queue.bind", "exchange"): "read",
    ("Basic.consume", "queue"): "read",
    ("Basic.publish", "exchange"): "write",
    ("Queue.delete", "queue"): "configure",
}

_ACCESS_REFUSED = re.compile(r"(?P<method>\w+\.\w+): \(403\) ACCESS_REFUSED - access to "
                             r"(?P<kind>exchange|queue) '(?P<name>[^']*)' in vhost '(?P<vhost>[^']*)' "
                             r"refused for user '(?P<user>[^']*)'")


def access_refused(exc: BaseException) -> dict[str, str] | None:
    """What RabbitMQ refused (method, kind, name, vhost, user, permission), or None."""
    if getattr(exc, "reply_code", None) != 403:
        return None
    found = _ACCESS_REFUSED.search(str(exc))
    if found is None:
        return {"method": "", "kind": "", "name": "", "vhost": "", "user": "",
                "permission": "", "text": str(exc)}
    refused = found.groupdict()
    refused["permission"] = _PERMISSION_NEEDED.get((refused["method"], refused["kind"]), "")
    refused["text"] = str(exc)
    return refused


_NO_EXCHANGE = re.compile(r"\(404\) NOT_FOUND - no exchange '(?P<name>[^']*)' "
                          r"in vhost '(?P<vhost>[^']*)'")


def exchange_missing(exc: BaseException) -> dict[str, str] | None:
    """The exchange RabbitMQ said does not exist (name, vhost), or None."""
    if getattr(exc, "reply_code", None) != 404:
        return None
    found = _NO_EXCHANGE.search(str(exc))
    return None if found is None else found.groupdict()


def missing_exchange_message(missing: dict[str, str], refused: dict[str, str]) -> str:
    """One line: the exchange does not exist yet and this user may not declare it, so we wait."""
    return (f"exchange {missing['name']!r} does not exist yet in vhost {missing['vhost']!r} and "
            f"RabbitMQ user {refused['user']!r} lacks configure permission to declare it: "
            "waiting for a worker to declare it")


def permission_message(refused: dict[str, str]) -> str:
    """One line naming the RabbitMQ permission a user lacks."""
    if not refused["permission"]:
        return f"the broker refused access: {refused['text']}"
    return (f"RabbitMQ user {refused['user']!r} lacks {refused['permission']} permission on "
            f"{refused['kind']} {refused['name']!r} in vhost {refused['vhost']!r} "
            f"(needed for {refused['method']}; see docs/brokers.md)")


def _cert_reqs(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return CERT_REQS[value.strip().lower()]
        except KeyError:
            raise ConfigurationError(f"TLS option cert_reqs={value!r}: expected none, optional "
                                     "or required") from None
    return value


def ssl_options_for(scheme: str, use_ssl: Any) -> Any:
    """kombu's ``ssl`` argument for ``scheme`` from Celery's ``broker_use_ssl`` (either spelling).

    Redis takes ``ssl_cert_reqs``, ``ssl_ca_certs``...; AMQP takes ``cert_reqs``, ``ca_certs``...
    Both spellings are accepted for both, and ``cert_reqs`` may be a name (``required``).
    """
    if not isinstance(use_ssl, dict):
        return bool(use_ssl)
    redis_family = scheme in REDIS_SCHEMES
    options: dict[str, Any] = {}
    for key, value in use_ssl.items():
        bare = key.removeprefix("ssl_")
        if bare in _SSL_KEYS:
            key = f"ssl_{bare}" if redis_family else bare
        if bare == "cert_reqs":
            value = _cert_reqs(value)
        options[key] = value
    return options


def connection_for(settings: Settings, **options: Any) -> Connection:
    """Return a (not yet connected) connection to the broker ``settings`` name.

    On evtools' read-ahead transport where its probe allows it and the connection is not TLS
    (see :mod:`evtools.transport`).
    """
    scheme = check_url(settings.broker_url)
    transport_options = dict(settings.broker_transport_options)
    use_ssl = settings.broker_use_ssl
    if use_ssl:
        options.setdefault("ssl", ssl_options_for(scheme, use_ssl))
    if scheme == "sentinel":
        if "master_name" not in transport_options:
            raise ConfigurationError(
                f"{safe_url(settings.broker_url)}: Sentinel needs the master's name: "
                "--broker-transport-option master_name=NAME (Celery's broker_transport_options)")
        # hear workers on both sides of kombu 5.4's fanout prefix change (/{db}. -> /0.)
        transport_options.setdefault("sentinel_fanout_compat", True)
    try:
        return transport.connect(settings.broker_url, transport_options=transport_options,
                                 **options)
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
    try:
        refuse_redis_cluster(connection, settings.broker_url)
    except UnsupportedBroker:
        connection.release()
        raise
    return connection


def refuse_redis_cluster(connection: Connection, url: str) -> None:
    """Raise :class:`UnsupportedBroker` when a redis:// URL names a node of a Redis Cluster."""
    if connection.transport.driver_type != "redis":
        return
    try:
        info = connection.default_channel.client.info("cluster")
    except Exception:  # noqa: BLE001 - an old server or a restricted INFO: not a cluster we can see
        logger.debug("INFO cluster failed on %s", safe_url(url), exc_info=True)
        return
    if info.get("cluster_enabled"):
        raise UnsupportedBroker(f"{safe_url(url)} is a Redis Cluster node: "
                                f"{CANNOT_CARRY_EVENTS['rediscluster']}")
