"""Check, before a read-ahead transport is used, that what it relies on is there and as expected.

The read-ahead transports (:mod:`.amqp`, :mod:`.redis`, :mod:`.filesystem`) subclass kombu's
transports and use private names of py-amqp, kombu and redis-py. Those can change in any
release, so each transport lists here the versions it was tested with and every private name
it uses, with the parameters it calls it with (or the attribute a method must set). The probe
imports and inspects them without running anything; a transport whose list does not check out
is not used, and kombu's own transport is used instead.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from typing import Any

__all__ = ("Need", "NEEDS", "VERSIONS", "problem")


@dataclass(frozen=True, slots=True)
class Need:
    """A name a transport uses: ``module`` then the attribute path ``name`` ('' for the module).

    ``params`` are parameter names the callable must accept; ``sets`` are attribute names the
    function's code must assign or read (an instance attribute set in ``__init__``, say).
    """

    module: str
    name: str = ""
    params: tuple[str, ...] = ()
    sets: tuple[str, ...] = ()


#: kind -> {distribution: (lowest version, first version not accepted)}: what was tested.
VERSIONS: dict[str, dict[str, tuple[tuple[int, ...], tuple[int, ...]]]] = {
    "amqp": {"amqp": ((5, 2), (6,)), "kombu": ((5, 3), (6,))},
    "redis": {"redis": ((5, 0), (9,)), "kombu": ((5, 7), (6,))},
    "filesystem": {"kombu": ((5, 3), (6,))},
}

_CHANNEL_STATE = ("is_closing", "_pending", "auto_decode")

#: kind -> every name of another library the transport of that kind uses.
NEEDS: dict[str, tuple[Need, ...]] = {
    "amqp": (
        Need("amqp", "Connection.Transport", ("host", "connect_timeout", "ssl", "read_timeout",
                                              "write_timeout", "socket_settings")),
        Need("amqp", "Connection.__init__", ("frame_handler",)),
        Need("amqp", "Connection.blocking_read", ("timeout",)),
        Need("amqp", "Connection.bytes_recv"),
        Need("amqp", "Channel._on_basic_deliver", ("consumer_tag", "delivery_tag", "redelivered",
                                                  "exchange", "routing_key", "msg")),
        *(Need("amqp", f"Channel.{name}") for name in _CHANNEL_STATE),
        Need("amqp", "Channel.__init__", sets=("callbacks",)),
        Need("amqp.serialization", "GenericContent.__init__", ("frame_method", "frame_args")),
        Need("amqp", "Message.__init__", ("body", "properties")),
        Need("amqp", "Message.inbound_header", ("buf", "offset")),
        Need("amqp", "Message.inbound_body", ("buf",)),
        Need("amqp.exceptions", "UnexpectedFrame"),
        Need("amqp.method_framing", "frame_handler", ("connection", "callback")),
        Need("amqp.serialization", "decode_properties_basic", ("buf", "offset")),
        Need("amqp.transport", "TCPTransport._setup_transport", sets=("_quick_recv",)),
        Need("amqp.transport", "TCPTransport.having_timeout", ("timeout",)),
        Need("amqp.transport", "TCPTransport.read_frame"),
        Need("amqp.transport", "SSLTransport.__init__", ("host", "connect_timeout", "ssl")),
        Need("amqp.transport", "SSLTransport._setup_transport", sets=("_quick_recv",)),
        Need("amqp.transport", "_AbstractTransport.__init__", sets=("raise_on_initial_eintr",)),
        Need("kombu.transport.pyamqp", "Channel"),
        Need("kombu.transport.pyamqp", "Connection"),
        Need("kombu.transport.pyamqp", "Transport.Connection"),
        Need("kombu.transport.pyamqp", "SSLTransport"),
    ),
    "redis": (
        Need("redis._parsers.socket", "SocketBuffer.__init__", sets=("_buffer",)),
        Need("redis._parsers.base", "_RESPBase.on_connect", sets=("_buffer",)),
        Need("redis.client", "PubSub.check_health"),
        Need("redis._parsers.resp2", "_RESP2Parser"),
        Need("redis.connection", "AbstractConnection.__init__", ("parser_class",)),
        Need("kombu.transport.redis", "logger"),
        Need("kombu.transport.redis", "Channel._receive"),
        Need("kombu.transport.redis", "Channel._receive_one", ("c",)),
        Need("kombu.transport.redis", "Channel._deliver_fanout_message", ("message", "exchange")),
        Need("kombu.transport.redis", "Channel.decode_body", ("body", "encoding")),
        Need("kombu.transport.redis", "Channel.subclient"),
        Need("kombu.transport.redis", "Channel._connparams", ("asynchronous",)),
        Need("kombu.transport.redis", "Channel._in_listen"),
        Need("kombu.transport.redis", "Channel.__init__", sets=("_fanout_to_queue",)),
        Need("kombu.transport.virtual", "Channel.__init__", sets=("_consumers", "_tag_to_queue")),
        Need("kombu.transport.virtual", "Transport.__init__", sets=("_callbacks",)),
        Need("kombu.utils.json", "loads"),
    ),
    "filesystem": (
        Need("kombu.transport.filesystem", "Channel._put", ("queue", "payload")),
        Need("kombu.transport.filesystem", "Channel._get", ("queue",)),
        Need("kombu.transport.filesystem", "Channel.data_folder_in"),
        Need("kombu.transport.filesystem", "Channel.data_folder_out"),
        Need("kombu.transport.filesystem", "ChannelError"),
        Need("kombu.utils.json", "dumps"),
        Need("kombu.utils.json", "loads"),
    ),
}


def _release(version: str) -> tuple[int, ...]:
    """The leading numbers of a version string: ``5.3.7`` -> (5, 3, 7), ``6.0.0b1`` -> (6, 0, 0)."""
    numbers = []
    for part in version.split("."):
        digits = "".join(char for char in part if char.isdigit()) if part[:1].isdigit() else ""
        if not digits:
            break
        numbers.append(int(digits))
        if not part.isdigit():
            break
    return tuple(numbers)


def _version_problem(distribution: str, lowest: tuple[int, ...], above: tuple[int, ...]) -> str | None:
    try:
        version = metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return f"{distribution} is not installed"
    if not lowest <= _release(version) < above:
        shown = ".".join(map(str, lowest)), ".".join(map(str, above))
        return f"{distribution} {version} is outside the tested range (>={shown[0]},<{shown[1]})"
    return None


def _code_names(function: Any) -> set[str]:
    """Every name a function's code (and the code nested in it) uses."""
    code = getattr(inspect.unwrap(function), "__code__", None)
    names: set[str] = set()
    stack = [code] if code is not None else []
    while stack:
        current = stack.pop()
        names.update(current.co_names)
        stack.extend(const for const in current.co_consts if inspect.iscode(const))
    return names


def _need_problem(need: Need) -> str | None:
    where = f"{need.module}.{need.name}" if need.name else need.module
    try:
        found: Any = importlib.import_module(need.module)
        for part in filter(None, need.name.split(".")):
            found = inspect.getattr_static(found, part)
    except (ImportError, AttributeError) as exc:
        return f"{where} is missing ({type(exc).__name__})"
    except Exception as exc:  # noqa: BLE001 - any failure to import means "do not use"
        return f"{where} cannot be imported ({type(exc).__name__}: {exc})"
    function = found.__func__ if isinstance(found, (staticmethod, classmethod)) else found
    if need.params:
        try:
            accepted = set(inspect.signature(function).parameters)
        except (TypeError, ValueError):
            return f"{where} is not a function"
        missing = [name for name in need.params if name not in accepted]
        if missing:
            return f"{where} takes no {', '.join(missing)}"
    if need.sets:
        missing = [name for name in need.sets if name not in _code_names(function)]
        if missing:
            return f"{where} does not set {', '.join(missing)}"
    return None


@cache
def problem(kind: str) -> str | None:
    """Why the read-ahead transport of ``kind`` cannot be used here; None when it can.

    Looked at once per process: versions first, then every name in :data:`NEEDS`.
    """
    for distribution, (lowest, above) in VERSIONS[kind].items():
        reason = _version_problem(distribution, lowest, above)
        if reason is not None:
            return reason
    for need in NEEDS[kind]:
        reason = _need_problem(need)
        if reason is not None:
            return reason
    return None
