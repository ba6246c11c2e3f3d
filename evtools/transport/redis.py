"""kombu's Redis transport, reading pub/sub (fanout) messages in batches, for consumers that must keep up.

On Redis, kombu receives event messages through PSUBSCRIBE, and Redis disconnects a
subscriber that falls 32 MB behind: how fast messages are taken decides how many are seen.
For each message kombu asks redis-py to parse one reply (a pure-Python parser, several
calls and two socket timeout changes per message) and decodes the envelope with an
object hook. This transport's channel reads what the subscriber socket holds (256 KiB at
a time, more for a big message), cuts every complete ``message``/``pmessage`` push out of it itself and
delivers it through kombu's own path (``_deliver_fanout_message``); anything else
(subscribe confirmations, PONGs, errors, a connection closed) is left to redis-py, so
subscriptions and errors behave as before.

No byte is ever lost or reordered: unread bytes live either in redis-py's read buffer or
here, never in both. This channel takes redis-py's unread bytes before reading the socket
and gives back what it did not use before redis-py reads again and before returning.
"""

from __future__ import annotations

import socket
import ssl
import time
from binascii import a2b_base64
from queue import Empty
from collections.abc import Callable
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.utils.json import loads as kombu_loads
from redis._parsers.resp2 import _RESP2Parser
from redis._parsers.socket import SocketBuffer

from .speedups import envelope_loads

__all__ = ("Channel", "Incomplete", "NotAMessage", "Transport", "decode_envelope", "give_back",
           "plain_content", "read_available", "readable_directly", "split_message",
           "take_read_ahead")

#: kombu's own logger: an undecodable message is reported where kombu reports it.
logger = kombu_redis.logger

#: How much one read from the subscriber socket takes at least, and at most.
READ_SIZE = 256 * 1024
MAX_READ_SIZE = 8 * 1024 * 1024

CRLF = b"\r\n"

#: How a message push starts, and whether a pattern comes before the channel: RESP3 pushes
#: (what redis-py 8 speaks by default) first, then RESP2 arrays, which kombu treats alike.
MESSAGE_HEADS = (
    (b">4\r\n$8\r\npmessage\r\n", True),
    (b">3\r\n$7\r\nmessage\r\n", False),
    (b"*4\r\n$8\r\npmessage\r\n", True),
    (b"*3\r\n$7\r\nmessage\r\n", False),
)
_LONGEST_HEAD = max(len(head) for head, _ in MESSAGE_HEADS)
_PATTERN_BY_HEAD = dict(MESSAGE_HEADS)
assert {len(head) for head in _PATTERN_BY_HEAD} == {17, 18}
_DOLLAR = ord("$")

#: A call of the channel's ``_receive`` stops reading the socket once it has delivered this
#: many messages, so that a flood that never pauses still lets the consumer run and stop.
MAX_BATCH = 4096

#: Without ``MSG_DONTWAIT`` (not on every platform) a read is made non-blocking by a timeout of 0.
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)


class Incomplete(Exception):
    """The data ends inside a message push; it must reach at least ``end`` (0: unknown yet)."""

    def __init__(self, end: int = 0) -> None:
        super().__init__(end)
        self.end = end


class NotAMessage(Exception):
    """What starts here is not a message push this module reads: redis-py must read it."""


# -- cutting message pushes out of the stream -----------------------------------------------

def _bulk(data: bytes, at: int) -> tuple[bytes, int]:
    """Return the bulk string starting at ``at`` and where the next item starts."""
    kind = data[at:at + 1]
    if kind != b"$":
        if not kind:
            raise Incomplete()
        raise NotAMessage()
    line_end = data.find(CRLF, at)
    if line_end < 0:
        raise Incomplete()
    try:
        size = int(data[at + 1:line_end])
    except ValueError:
        raise NotAMessage() from None
    if size < 0:  # a null bulk string: never in a message push
        raise NotAMessage()
    start = line_end + 2
    stop = start + size
    if len(data) < stop + 2:
        raise Incomplete(stop + 2)
    if data[stop:stop + 2] != CRLF:
        raise NotAMessage()
    return data[start:stop], stop + 2


def split_message(data: bytes, pos: int) -> tuple[bytes, bytes, int]:
    """Return ``(channel, payload, end)`` of the message push starting at ``pos``.

    Raises :class:`Incomplete` when ``data`` ends inside it and :class:`NotAMessage` when
    something else starts at ``pos``.
    """
    # A whole, well-formed push (nearly every one) is cut here in one go, without helpers;
    # anything else, or any doubt, is left to _split_carefully, which says what is wrong.
    has_pattern = _PATTERN_BY_HEAD.get(data[pos:pos + 18])
    at = pos + 18
    if has_pattern is None:
        has_pattern = _PATTERN_BY_HEAD.get(data[pos:pos + 17])
        at = pos + 17
    if has_pattern is not None:
        find = data.find
        try:
            if has_pattern:
                line_end = find(CRLF, at)
                if line_end < 0 or data[at] != _DOLLAR:
                    return _split_carefully(data, pos)
                length = int(data[at + 1:line_end])
                at = line_end + 2 + length
                if length < 0 or data[at:at + 2] != CRLF:
                    return _split_carefully(data, pos)
                at += 2
            line_end = find(CRLF, at)
            if line_end < 0 or data[at] != _DOLLAR:
                return _split_carefully(data, pos)
            length = int(data[at + 1:line_end])
            start, at = line_end + 2, line_end + 2 + length
            if length < 0 or data[at:at + 2] != CRLF:
                return _split_carefully(data, pos)
            channel_end, at = at, at + 2
            line_end = find(CRLF, at)
            if line_end < 0 or data[at] != _DOLLAR:
                return _split_carefully(data, pos)
            length = int(data[at + 1:line_end])
            payload_start, at = line_end + 2, line_end + 2 + length
            if length >= 0 and data[at:at + 2] == CRLF:
                return data[start:channel_end], data[payload_start:at], at + 2
        except (IndexError, ValueError):
            pass
    return _split_carefully(data, pos)


def _split_carefully(data: bytes, pos: int) -> tuple[bytes, bytes, int]:
    """:func:`split_message`, one bulk string at a time, raising what is wrong."""
    for head, has_pattern in MESSAGE_HEADS:
        if data.startswith(head, pos):
            at = pos + len(head)
            if has_pattern:
                _pattern, at = _bulk(data, at)
            channel, at = _bulk(data, at)
            payload, at = _bulk(data, at)
            return channel, payload, at
    rest = data[pos:pos + _LONGEST_HEAD]
    if len(rest) < _LONGEST_HEAD and any(head.startswith(rest) for head, _ in MESSAGE_HEADS):
        raise Incomplete()
    raise NotAMessage()


def decode_envelope(payload: bytes, loads: Callable[[bytes], Any] | None = None) -> Any:
    """Decode a kombu message envelope exactly as kombu's ``loads`` does, faster when possible.

    kombu decodes ``payload.decode(errors="replace")`` with an object hook that only changes
    objects with a ``__type__`` key; such a key is written either as is or with ``\\u``
    escapes, so a payload holding neither decodes the same without it, with ``loads``
    (orjson where ``evtools[speedups]`` installed it; see :mod:`.speedups`).
    """
    if b"__type__" in payload or b"\\u" in payload:
        return kombu_loads(payload.decode(errors="replace"))
    return (loads or envelope_loads())(payload)


def plain_content(message: Any) -> tuple[Any, bytes] | None:
    """``(content type, body)`` of an envelope as kombu's message would carry them.

    None when kombu would do more than base64-decode the body (decompress it, encode a
    text body, report an error): such messages go kombu's way.
    """
    if type(message) is not dict:
        return None
    properties, headers, body = message.get("properties"), message.get("headers"), message.get("body")
    if (type(properties) is not dict or "delivery_tag" not in properties
            or properties.get("body_encoding") != "base64" or type(body) is not str or not body
            or (headers and (type(headers) is not dict or headers.get("compression")))):
        return None
    try:
        return message.get("content-type"), a2b_base64(body.encode())
    except (ValueError, UnicodeError):  # kombu raises the same the long way
        return None


# -- sharing the socket with redis-py ----------------------------------------------------------

def _socket_buffer(connection: Any) -> SocketBuffer | None:
    """redis-py's read buffer of ``connection``, or None when it reads some other way (hiredis)."""
    parser = getattr(connection, "_parser", None)
    buffer = getattr(parser, "_buffer", None)
    return buffer if isinstance(buffer, SocketBuffer) and buffer._buffer is not None else None


def readable_directly(connection: Any) -> bool:
    """True when this channel can read the subscriber socket beside redis-py's buffer."""
    if connection is None or getattr(connection, "_sock", None) is None \
            or _socket_buffer(connection) is None:
        return False
    return not isinstance(connection._sock, ssl.SSLSocket)  # TLS buffers inside the SSL object


def take_read_ahead(connection: Any) -> bytes:
    """Remove and return the bytes redis-py read from the socket but has not parsed yet."""
    buffer = _socket_buffer(connection)
    if buffer is None:
        return b""
    stream = buffer._buffer
    rest = stream.read()
    stream.seek(0)
    stream.truncate()
    return rest


def give_back(connection: Any, data: bytes) -> None:
    """Put ``data`` (taken from the socket before anything redis-py still holds) back in front."""
    if not data:
        return
    buffer = _socket_buffer(connection)
    if buffer is None:  # the connection is gone, and what it had read with it
        return
    stream = buffer._buffer
    rest = stream.read()  # empty unless redis-py read since the take: keep the order anyway
    stream.seek(0)
    stream.truncate()
    stream.write(data + rest)
    stream.seek(0)


def read_available(sock: socket.socket, wanted: int = 0) -> bytes | None:
    """Return what ``sock`` holds now: up to ``wanted`` bytes, within the read size bounds.

    Returns None when nothing is there yet, and ``b""`` at the end of the stream or on a
    socket error: redis-py then reads the socket again and reports it as it always does.
    """
    size = min(max(READ_SIZE, wanted), MAX_READ_SIZE)
    try:
        if _DONTWAIT and sock.gettimeout() is None:
            return sock.recv(size, _DONTWAIT)
        timeout = sock.gettimeout()
        sock.settimeout(0)
        try:
            return sock.recv(size)
        finally:
            sock.settimeout(timeout)
    except BlockingIOError:
        return None
    except OSError:
        return b""


class _Inbox:
    """Bytes read from the subscriber socket and not used yet; the next push starts at ``pos``."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def rest(self) -> bytes:
        """Remove and return the bytes not used yet."""
        rest = self.data[self.pos:]
        self.data, self.pos = b"", 0
        return rest

    def add(self, more: bytes) -> None:
        """Append bytes just read."""
        self.data, self.pos = self.data[self.pos:] + more, 0


# -- the channel -----------------------------------------------------------------------------

class Channel(kombu_redis.Channel):
    """kombu's Redis channel, taking fanout messages from the subscriber socket in batches."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        #: queue -> (the callback kombu holds for its consumer, a direct handler)
        self.plain_handlers: dict[str, tuple[Any, Callable[[Any, bytes], Any]]] = {}
        self._envelope_loads = envelope_loads()
        super().__init__(*args, **kwargs)

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        """kombu's connection parameters, with redis-py's own reply parser even where hiredis is installed.

        This channel reads the subscriber socket beside redis-py's read buffer, which only
        redis-py's Python parser has: with hiredis' parser every message would go kombu's
        slow way (measured in bench/PROFILES.md). redis-py picks its RESP3 variant by itself.
        """
        params = super()._connparams(asynchronous)
        params.setdefault("parser_class", _RESP2Parser)
        return params

    def route_plain_messages(self, start_consuming: Callable[[], Any],
                             handler: Callable[[Any, bytes], Any]) -> Callable[[], None]:
        """Call ``start_consuming()``; hand the plain messages of the consumers it starts to ``handler``.

        ``handler(content_type, body)`` gets what kombu's message would carry as
        ``content_type`` and ``body``, without the message object: only for consumers that
        do not acknowledge (``no_ack``). Messages kombu would change (compressed) or could not
        build still reach the consumer's own callback. Returns a function removing the route.
        """
        before = set(self._consumers)
        start_consuming()
        queues = [self._tag_to_queue[tag] for tag in self._consumers - before]
        callbacks = self.connection._callbacks
        for queue in queues:
            self.plain_handlers[queue] = (callbacks.get(queue), handler)

        def remove() -> None:
            for queue in queues:
                self.plain_handlers.pop(queue, None)

        return remove

    def _receive(self) -> bool:
        """Deliver every message the subscriber connection has now; True if any was delivered."""
        client = self.subclient
        connection = client.connection
        if not readable_directly(connection):
            return super()._receive()
        try:
            client.check_health()  # what redis-py does before each read: a PING when due
        except self.connection_errors:
            self._in_listen = None
            raise
        inbox = _Inbox(take_read_ahead(connection))
        delivered = 0
        try:
            while readable_directly(connection):  # a handler may have closed the channel
                needed, count = self._deliver_messages(inbox, client)
                delivered += count
                if needed is not None:
                    if delivered >= MAX_BATCH:  # what is left in the socket wakes the poller again
                        break
                    more = read_available(connection._sock, needed)
                    if more is None:  # the rest has not arrived: the poller calls again when it has
                        break
                    if more:
                        inbox.add(more)
                        continue
                    # b"": closed or failed; redis-py reads the socket again and raises as always
                delivered += self._hand_over(client, inbox)
                connection = client.connection
        finally:
            give_back(connection, inbox.rest())  # the bytes came from this connection
            if delivered and connection is not None and connection.health_check_interval:
                # redis-py pushes the next health check back after each reply it reads
                connection.next_health_check = time.monotonic() + connection.health_check_interval
        return delivered > 0

    def _hand_over(self, client: Any, inbox: _Inbox) -> int:
        """Let kombu and redis-py read the next reply, then take back what redis-py read ahead.

        Returns 1 if that reply was a message kombu delivered, else 0.
        """
        give_back(client.connection, inbox.rest())
        try:
            delivered = 1 if self._receive_one(client) else 0
        except Empty:  # a message kombu could not decode: it logged it
            delivered = 0
        inbox.add(take_read_ahead(client.connection))
        return delivered

    def _deliver_messages(self, inbox: _Inbox, client: Any) -> tuple[int | None, int]:
        """Deliver the complete message pushes at the front of ``inbox``.

        Returns ``(needed, count)``: ``needed`` is how many bytes past ``inbox.pos`` the next
        push needs at least (0 if unknown), or None when what comes next is not a message push.
        """
        data = inbox.data
        prefix_length = len(getattr(client, "global_keyprefix", "") or "")
        count = 0
        while inbox.pos < len(data):
            try:
                channel, payload, end = split_message(data, inbox.pos)
            except Incomplete as incomplete:
                return max(0, incomplete.end - inbox.pos), count
            except NotAMessage:
                return None, count
            inbox.pos = end  # used up before delivery, as redis-py would have, even if that fails
            if prefix_length:
                channel = channel[prefix_length:]
            if payload and self._on_fanout_message(channel, payload):
                count += 1
        return 0, count

    def decode_body(self, body: Any, encoding: str | None = None) -> Any:
        """kombu's body decoding; base64 (every body on Redis) without its three layers of calls."""
        if encoding == "base64":
            # kombu's Base64 codec: b64decode(str_to_bytes(body)), which is exactly this
            return a2b_base64(body.encode() if isinstance(body, str) else body)
        return super().decode_body(body, encoding)

    def _on_fanout_message(self, raw_channel: bytes, payload: bytes) -> bool:
        """Decode and deliver one fanout message, as kombu's ``_receive_one`` does."""
        channel = raw_channel.decode(errors="replace")
        if channel.startswith("/"):  # the '/{db}.' fanout prefix
            channel = channel.partition(".")[2]
        try:
            message = decode_envelope(payload, self._envelope_loads)
        except (TypeError, ValueError) as exc:
            # One line, as kombu's warning says it, without its traceback: a malformed
            # message is bad input, not a fault of ours.
            logger.warning("Cannot process event on channel %r: %s (%s)", channel,
                           repr(payload)[:200], exc)
            return False
        exchange = channel.split("/", 1)[0]
        queue = self._fanout_to_queue.get(exchange)
        route = self.plain_handlers.get(queue) if self.plain_handlers else None
        # Only while the consumer that asked for the route is still the queue's consumer.
        if route is not None and self.connection._callbacks.get(queue) is route[0]:
            content = plain_content(message)
            if content is not None:
                route[1](*content)
                return True
        return bool(self._deliver_fanout_message(message, exchange))


class Transport(kombu_redis.Transport):
    """kombu's ``redis://`` transport with batched pub/sub reads."""

    Channel = Channel

    #: Redis keeps nothing for a slow subscriber: the receiver reads ahead of what it has
    #: handled (see :func:`evtools.transport.eager_reader`).
    reads_eagerly = True
