"""kombu's py-amqp transport, made fast enough for a monitor that must keep up with a cluster.

py-amqp reads every frame with three ``recv`` calls of exactly the size it needs (header,
payload, end octet), and turns every frame into a generic method dispatch: three system
calls and three trips through its frame machinery per message, for a monitor that must take
tens of thousands of events a second. Two changes, nothing else:

* :class:`BufferedTCPTransport` (and :class:`BufferedSSLTransport` for TLS) reads what the
  socket has (up to 256 KiB at a time; a TLS record at a time over TLS) and cuts frames out
  of that buffer. Timeouts keep whatever was read, so no byte is lost between waits.
* :class:`BufferedConnection` takes a whole delivery (a Basic.Deliver method frame, its content
  header and its single body frame) straight out of that buffer when all three are already
  there, and hands it to the consumer's callback as py-amqp would, counting its frames as
  traffic for heartbeats as py-amqp does. Every other frame (heartbeats, channel or connection
  close, a server's basic.cancel), and every delivery that is not that simple (a body split
  over several frames, an empty body, a consumer py-amqp does not know, a channel that is
  closing, a frame that does not parse), goes through py-amqp's own code, unchanged.

A consumer that only wants the content type and body of its messages (the event receiver) can
have them handed over directly, without building py-amqp's and kombu's message objects; see
:func:`deliver_plain_messages`.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import struct
from collections.abc import Callable, Iterator
from functools import partial
from struct import unpack_from
from typing import Any

import amqp
from amqp.exceptions import UnexpectedFrame
from amqp.method_framing import frame_handler
from amqp.serialization import decode_properties_basic
from amqp.transport import SSLTransport, TCPTransport
from kombu.transport import pyamqp

__all__ = (
    "BufferedChannel",
    "BufferedConnection",
    "BufferedSSLTransport",
    "BufferedTCPTransport",
    "ReadAhead",
    "SSLTransport",
    "Transport",
    "deliver_arguments",
    "deliver_plain_messages",
    "find_delivery",
)

READ_SIZE = 256 * 1024
FRAME_END = 206

METHOD_FRAME, HEADER_FRAME, BODY_FRAME, HEARTBEAT_FRAME = 1, 2, 3, 8
#: Basic.Deliver (class 60, method 60) as it starts a method frame's payload.
BASIC_DELIVER = (60, 60)
_BASIC_DELIVER_BYTES = struct.pack(">HH", *BASIC_DELIVER)
#: Basic's class id, as it starts a content header's payload.
_BASIC_CLASS_BYTES = struct.pack(">H", 60)

#: A consumer's direct handler: ``handler(content_type, body)``.
PlainHandler = Callable[[Any, Any], Any]

#: Distinct property lists remembered per channel (a cluster's workers send a handful).
PROPERTY_CACHE_SIZE = 1024

JSON_CONTENT_TYPE = "application/json"

#: How kombu and Celery spell UTF-8 in ``content_encoding``.
_UTF8_NAMES = frozenset({"utf-8", "utf8"})

#: First bytes of a JSON object or list: such a UTF-8 body decodes the same as bytes or as text.
_JSON_OPENERS = frozenset(b"{[")

_unpack_frame_header = struct.Struct(">BHI").unpack_from
_unpack_body_size = struct.Struct(">Q").unpack_from
_DELIVERY_TAG = struct.Struct(">QB")


class ReadAhead:
    """What makes a py-amqp transport read ahead: mixed into its TCP and its TLS transport.

    py-amqp's transports read through ``_quick_recv`` (``recv`` of the socket, or ``read`` of
    the TLS socket, which gives at most one TLS record at a time); both are read the same way.
    """

    #: errno values after which a read is tried again (py-amqp's own lists).
    retry_errnos: tuple[int, ...] = (errno.EAGAIN, errno.EINTR)

    sock: Any
    connected: bool
    raise_on_initial_eintr: bool
    _quick_recv: Callable[[int], bytes]

    def _setup_transport(self) -> None:
        super()._setup_transport()  # type: ignore[misc]
        self._inbox = b""
        self._at = 0

    @contextlib.contextmanager
    def having_timeout(self, timeout: float | None) -> Iterator[socket.socket]:
        """Skip setting the socket timeout (two system calls) when a frame is already here."""
        inbox = self._inbox
        if len(inbox) - self._at >= 7:
            size = unpack_from(">I", inbox, self._at + 3)[0]
            if len(inbox) - self._at >= size + 8:
                yield self.sock
                return
        with super().having_timeout(timeout) as sock:  # type: ignore[misc]
            yield sock

    def _fill(self, wanted: int, initial: bool = False) -> None:
        """Read until the buffer holds ``wanted`` bytes past the current position."""
        while len(self._inbox) - self._at < wanted:
            try:
                data = self._quick_recv(READ_SIZE)
            except OSError as exc:
                if exc.errno in self.retry_errnos:
                    if initial and self.raise_on_initial_eintr:
                        raise TimeoutError() from None
                    continue
                if not isinstance(exc, socket.timeout):
                    self.connected = False
                raise
            if not data:
                self.connected = False
                raise OSError("Server unexpectedly closed connection")
            self._inbox = self._inbox[self._at:] + data
            self._at = 0

    def _fill_frame(self) -> None:
        """Read until a whole frame is buffered."""
        self._fill(7, initial=True)
        self._fill(8 + unpack_from(">I", self._inbox, self._at + 3)[0])

    def wait_for_frame(self, timeout: float | None) -> None:
        """Wait until a whole frame is buffered (``socket.timeout`` if none comes in time)."""
        with self.having_timeout(timeout):
            self._fill_frame()

    def read_frame(self, unpack: Any = None) -> tuple[int, int, bytes]:
        """Return the next ``(frame_type, channel, payload)``."""
        self._fill_frame()
        frame_type, channel, size = unpack_from(">BHI", self._inbox, self._at)
        start = self._at + 7
        payload = self._inbox[start:start + size]
        frame_end = self._inbox[start + size]
        self._at = start + size + 1
        if frame_end != FRAME_END:
            raise UnexpectedFrame(f"Received frame_end {frame_end:#04x} while expecting 0xce")
        return frame_type, channel, payload

    def buffered(self) -> tuple[bytes, int]:
        """The bytes read ahead and the position of the next frame in them."""
        return self._inbox, self._at

    def skip_to(self, position: int) -> None:
        """Mark the buffered bytes before ``position`` as read (frames taken by the caller)."""
        self._at = position


class BufferedTCPTransport(ReadAhead, TCPTransport):
    """py-amqp's TCP transport, reading ahead."""


class BufferedSSLTransport(ReadAhead, SSLTransport):
    """py-amqp's TLS transport, reading ahead (decrypted bytes are buffered as plain ones)."""

    #: A TLS read that could not complete reports SSL_ERROR_WANT_READ, whose value is ENOENT's.
    retry_errnos = (errno.ENOENT, errno.EAGAIN, errno.EINTR)


# -- finding a whole delivery in the buffer -------------------------------------------------

def find_delivery(buf: bytes, at: int) -> tuple[int, bytes, bytes, bytes, int] | None:
    """A Basic.Deliver whose content header and one body frame follow it whole in ``buf``.

    Returns ``(channel, method payload, header payload, body, end position)``, or None when the
    frames at ``at`` are anything else: another method, a heartbeat, a delivery not all read
    yet, a body split over several frames, an empty body (no body frame at all), frames of
    different channels, or a frame that does not end well (py-amqp then reads it and reports
    what is wrong, as it always did). One function, no helpers: it runs for every message.
    """
    size = len(buf)
    if size - at < 7:
        return None
    kind, channel, length = _unpack_frame_header(buf, at)
    method_at = at + 7
    at = method_at + length
    if (kind != METHOD_FRAME or size <= at + 7 or buf[at] != FRAME_END
            or not buf.startswith(_BASIC_DELIVER_BYTES, method_at)):
        return None
    method_end, at = at, at + 1
    kind, header_channel, length = _unpack_frame_header(buf, at)
    header_at = at + 7
    at = header_at + length
    if (kind != HEADER_FRAME or header_channel != channel or length < 14 or size <= at + 7
            or buf[at] != FRAME_END or not buf.startswith(_BASIC_CLASS_BYTES, header_at)):
        return None
    header_end, at = at, at + 1
    kind, body_channel, length = _unpack_frame_header(buf, at)
    body_at = at + 7
    at = body_at + length
    if (kind != BODY_FRAME or body_channel != channel or size <= at or buf[at] != FRAME_END
            or length == 0 or length != _unpack_body_size(buf, header_at + 4)[0]):
        return None
    return (channel, buf[method_at:method_end], buf[header_at:header_end], buf[body_at:at],
            at + 1)


def _short_string(payload: bytes, at: int) -> tuple[str, int]:
    size = payload[at]
    end = at + 1 + size
    if end > len(payload):
        raise ValueError("short string runs past the frame")
    return payload[at + 1:end].decode("utf-8", "surrogatepass"), end


def _plain_arguments_ok(payload: bytes, at: int) -> bool:
    """Whether the rest of Basic.Deliver's arguments after the consumer tag (ending at ``at``)
    are all there and in ASCII, so that py-amqp would decode them without a complaint."""
    try:
        exchange_end = at + 10 + payload[at + 9]
        end = exchange_end + 1 + payload[exchange_end]
    except IndexError:
        return False
    return end <= len(payload) and payload[at + 9:end].isascii()


def deliver_arguments(payload: bytes) -> tuple[str, int, bool, str, str]:
    """Basic.Deliver's arguments: (consumer tag, delivery tag, redelivered, exchange, routing key).

    Decoded as py-amqp decodes them (UTF-8 with surrogates passed); raises ValueError,
    IndexError or struct.error when the payload is truncated.
    """
    consumer_tag, at = _short_string(payload, 4)
    delivery_tag, flags = _DELIVERY_TAG.unpack_from(payload, at)
    exchange, at = _short_string(payload, at + 9)
    routing_key, at = _short_string(payload, at)
    return consumer_tag, delivery_tag, bool(flags & 1), exchange, routing_key


# -- channels and connections ---------------------------------------------------------------

class BufferedChannel(pyamqp.Channel):
    """kombu's py-amqp channel, able to take a whole delivery cut out of the read buffer."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        #: consumer tag, as its bytes come in a Basic.Deliver -> (the tag, the callback py-amqp
        #: holds for it, its direct handler)
        self.plain_handlers: dict[bytes, tuple[str, Any, PlainHandler]] = {}
        self._plain_properties: dict[bytes, tuple[Any, Any, bool] | None] = {}
        super().__init__(*args, **kwargs)

    def route_plain_messages(self, start_consuming: Callable[[], Any],
                             handler: PlainHandler) -> Callable[[], None]:
        """Call ``start_consuming()``; hand plain messages of the consumers it starts to ``handler``.

        See :func:`deliver_plain_messages`.
        """
        return deliver_plain_messages(self, start_consuming, handler)

    def take_delivery(self, method: bytes, header: bytes, body: bytes) -> Callable[[], Any] | None:
        """What handing this delivery on means, ready to call; None to leave it to py-amqp.

        Everything that can fail is done here, before the frames count as read, so that a
        delivery py-amqp would refuse (or raise on) is left in the buffer for it.
        """
        if self.is_closing or BASIC_DELIVER in self._pending:
            return None  # py-amqp drops it (closing), or wakes whoever waits for it
        tag_end = 5 + method[4] if len(method) > 4 else 0
        plain = self.plain_handlers.get(method[5:tag_end]) if tag_end else None
        if plain is not None and self.callbacks.get(plain[0]) is not plain[1]:
            plain = None  # the route outlived its consumer
        if plain is not None and _plain_arguments_ok(method, tag_end):
            # A plain consumer's delivery: only its consumer tag matters (no ack, no message).
            handed = self._plain_delivery(plain[2], header, body)
            if handed is not None:
                return handed
            plain = None  # kombu would change the body: its message, the long way
        try:
            arguments = deliver_arguments(method)
        except (ValueError, IndexError, struct.error):
            return None
        if self.callbacks.get(arguments[0]) is None:
            return None  # py-amqp rejects it, with a warning
        if plain is not None:  # names py-amqp decodes beyond ASCII: still a plain delivery
            handed = self._plain_delivery(plain[2], header, body)
            if handed is not None:
                return handed
        return self._amqp_delivery(arguments, method, header, body)

    def _plain_delivery(self, handler: PlainHandler, header: bytes, body: bytes,
                        ) -> Callable[[], Any] | None:
        """Call ``handler(content_type, body)``, the body decoded as kombu would have it.

        Except one case: a UTF-8 JSON body that starts with ``{`` or ``[`` (every event) stays
        bytes, which the receiver decodes to the very same value (with orjson, where
        ``evtools[speedups]`` installed it, which takes bytes without a copy to text).
        """
        plain = self._plain_properties.get(header[12:], False)
        if plain is False:
            plain = self._remember_properties(header)
        if plain is None:
            return None
        content_type, encoding, json_utf8 = plain
        if encoding is not None and self.auto_decode and not (
                json_utf8 and len(body) > 1 and body[0] in _JSON_OPENERS and body[1]):
            with contextlib.suppress(Exception):  # py-amqp keeps the bytes when decoding fails
                body = body.decode(encoding)
        return partial(handler, content_type, body)

    def _remember_properties(self, header: bytes) -> tuple[Any, Any, bool] | None:
        """(content type, content encoding, whether both say UTF-8 JSON) of a property list.

        None if kombu would change the body: kombu decompresses a body whose headers name a
        compression; such messages (and property lists that do not parse) go the long way.
        The answer depends on the bytes alone, so it is kept: a cluster's events carry a
        handful of distinct property lists.
        """
        try:
            properties, _ = decode_properties_basic(header, 12)
        except Exception:  # noqa: BLE001 - malformed: py-amqp raises the same the long way
            plain = None
        else:
            headers = properties.get("application_headers") or {}
            compressed = bool(headers.get("compression"))
            content_type, encoding = properties.get("content_type"), properties.get("content_encoding")
            json_utf8 = (content_type == JSON_CONTENT_TYPE and type(encoding) is str
                         and encoding.lower() in _UTF8_NAMES)
            plain = None if compressed else (content_type, encoding, json_utf8)
        if len(self._plain_properties) >= PROPERTY_CACHE_SIZE:
            self._plain_properties.clear()
        self._plain_properties[header[12:]] = plain
        return plain

    def _amqp_delivery(self, arguments: tuple[str, int, bool, str, str], method: bytes,
                       header: bytes, body: bytes) -> Callable[[], Any] | None:
        """py-amqp's message for the delivery, handed to its consumer's callback as py-amqp does."""
        message = amqp.Message(frame_method=BASIC_DELIVER, frame_args=method)
        try:
            message.inbound_header(header)
        except Exception:  # noqa: BLE001 - malformed: py-amqp raises the same the long way
            return None
        message.inbound_body(body)
        if self.auto_decode and "content_encoding" in message.properties:
            with contextlib.suppress(Exception):  # py-amqp keeps the bytes when decoding fails
                message.body = message.body.decode(message.content_encoding)
        return partial(self._on_basic_deliver, *arguments, message)


def _tracking_frame_handler(connection: BufferedConnection, callback: Any) -> Callable[[Any], Any]:
    """py-amqp's frame handler, noting the channels on which it holds part of a message.

    A delivery may only be taken from the buffer on a channel where py-amqp is not halfway
    through one. A channel counts as halfway from its first frame until py-amqp reports a
    method handled, so an error in between leaves it to py-amqp for good measure.
    """
    on_frame = frame_handler(connection, callback)
    halfway = connection.channels_halfway = set()

    def on_tracked_frame(frame: tuple[int, int, bytes]) -> Any:
        frame_type, channel = frame[0], frame[1]
        if frame_type == HEARTBEAT_FRAME:
            return on_frame(frame)
        halfway.add(channel)
        done = on_frame(frame)
        if done:
            halfway.discard(channel)
        return done

    return on_tracked_frame


class BufferedConnection(pyamqp.Connection):
    """py-amqp's connection, on :class:`BufferedTCPTransport` (:class:`BufferedSSLTransport` with TLS)."""

    Channel = BufferedChannel

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.channels_halfway: set[int] = set()
        kwargs.setdefault("frame_handler", _tracking_frame_handler)
        super().__init__(*args, **kwargs)

    def Transport(self, host: str, connect_timeout: Any, ssl: Any = False,
                  read_timeout: Any = None, write_timeout: Any = None,
                  socket_settings: Any = None, **kwargs: Any) -> Any:
        if ssl:
            return BufferedSSLTransport(host, connect_timeout=connect_timeout, ssl=ssl,
                                        read_timeout=read_timeout, write_timeout=write_timeout,
                                        socket_settings=socket_settings, **kwargs)
        return BufferedTCPTransport(host, connect_timeout=connect_timeout,
                                    read_timeout=read_timeout, write_timeout=write_timeout,
                                    socket_settings=socket_settings, **kwargs)

    def drain_events(self, timeout: float | None = None) -> None:
        """Handle frames until one method (or message) has been handled, as py-amqp does."""
        while True:
            transport = self._transport
            if isinstance(transport, ReadAhead):
                # Read before choosing: py-amqp's read_frame would take the first frame of a
                # delivery that has just arrived whole, and send all of it the long way.
                transport.wait_for_frame(timeout)
            if self.take_buffered_delivery() or self.blocking_read(timeout):
                return

    def take_buffered_delivery(self) -> bool:
        """Hand on a delivery that is whole in the read buffer; False if there is none to take."""
        transport = self._transport
        if not isinstance(transport, ReadAhead):
            return False  # another transport (a subclass's own)
        found = find_delivery(*transport.buffered())
        if found is None:
            return False
        channel_id, method, header, body, end = found
        channel = self.channels.get(channel_id) if self.channels is not None else None
        if not isinstance(channel, BufferedChannel) or channel_id in self.channels_halfway:
            return False
        hand_on = channel.take_delivery(method, header, body)
        if hand_on is None:
            return False
        transport.skip_to(end)
        self.bytes_recv += 3  # one per frame, as py-amqp counts them for heartbeats
        hand_on()
        return True


def deliver_plain_messages(channel: Any, start_consuming: Callable[[], Any],
                           handler: PlainHandler) -> Callable[[], None]:
    """Call ``start_consuming()``; route the simple messages of the consumers it starts to ``handler``.

    ``handler(content_type, body)`` then gets what kombu's message would carry as
    ``content_type`` and ``body``, for every message that kombu would not change (no
    compression); the others still reach the consumer's own callback. On any channel that
    is not a :class:`BufferedChannel` this only calls ``start_consuming()``. Returns a
    function that removes the route.
    """
    if not isinstance(channel, BufferedChannel):
        start_consuming()
        return lambda: None
    before = set(channel.callbacks)
    start_consuming()
    started = {tag: callback for tag, callback in channel.callbacks.items() if tag not in before}
    for tag, callback in started.items():
        channel.plain_handlers[tag.encode("utf-8", "surrogatepass")] = (tag, callback, handler)

    def remove() -> None:
        for tag in started:
            channel.plain_handlers.pop(tag.encode("utf-8", "surrogatepass"), None)

    return remove


class Transport(pyamqp.Transport):
    """kombu's ``amqp://`` transport with buffered reads (over TLS too, with ``ssl=``)."""

    Connection = BufferedConnection


class SSLTransport(pyamqp.SSLTransport):
    """kombu's ``amqps://`` transport (TLS always) with buffered reads."""

    Connection = BufferedConnection


assert issubclass(BufferedConnection, amqp.Connection)
