"""kombu's py-amqp transport with buffered frame reading, for consumers that must keep up.

py-amqp reads every frame with three ``recv`` calls of exactly the size it needs (header,
payload, end octet): three system calls per frame, nine per message, for a monitor that
must take tens of thousands of events a second. This transport reads what the socket has
(up to 256 KiB at a time) and cuts frames out of that buffer; nothing else changes.
Timeouts keep whatever was read, so no byte is ever lost between two waits.
"""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Iterator
from struct import unpack_from
from typing import Any

import amqp
from amqp.exceptions import UnexpectedFrame
from amqp.transport import TCPTransport
from kombu.transport import pyamqp

__all__ = ("Transport", "BufferedTCPTransport")

READ_SIZE = 256 * 1024
FRAME_END = 206
_RETRY = (errno.EAGAIN, errno.EINTR)


class BufferedTCPTransport(TCPTransport):
    """A TCP transport whose :meth:`read_frame` reads ahead into a buffer."""

    def _setup_transport(self) -> None:
        super()._setup_transport()
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
        with super().having_timeout(timeout) as sock:
            yield sock

    def _fill(self, wanted: int, initial: bool = False) -> None:
        """Read until the buffer holds ``wanted`` bytes past the current position."""
        while len(self._inbox) - self._at < wanted:
            try:
                data = self._quick_recv(READ_SIZE)
            except OSError as exc:
                if exc.errno in _RETRY:
                    if initial and self.raise_on_initial_eintr:
                        raise socket.timeout() from None
                    continue
                if not isinstance(exc, socket.timeout):
                    self.connected = False
                raise
            if not data:
                self.connected = False
                raise OSError("Server unexpectedly closed connection")
            self._inbox = self._inbox[self._at:] + data
            self._at = 0

    def read_frame(self, unpack: Any = None) -> tuple[int, int, bytes]:
        """Return the next ``(frame_type, channel, payload)``."""
        self._fill(7, initial=True)
        frame_type, channel, size = unpack_from(">BHI", self._inbox, self._at)
        self._fill(8 + size)
        start = self._at + 7
        payload = self._inbox[start:start + size]
        frame_end = self._inbox[start + size]
        self._at = start + size + 1
        if frame_end != FRAME_END:
            raise UnexpectedFrame(f"Received frame_end {frame_end:#04x} while expecting 0xce")
        return frame_type, channel, payload


class BufferedConnection(pyamqp.Connection):
    """py-amqp's connection, on :class:`BufferedTCPTransport` when not using TLS."""

    def Transport(self, host: str, connect_timeout: Any, ssl: Any = False,  # noqa: N802
                  read_timeout: Any = None, write_timeout: Any = None,
                  socket_settings: Any = None, **kwargs: Any) -> Any:
        if ssl:
            return super().Transport(host, connect_timeout, ssl=ssl, read_timeout=read_timeout,
                                     write_timeout=write_timeout,
                                     socket_settings=socket_settings, **kwargs)
        return BufferedTCPTransport(host, connect_timeout=connect_timeout,
                                    read_timeout=read_timeout, write_timeout=write_timeout,
                                    socket_settings=socket_settings, **kwargs)


class Transport(pyamqp.Transport):
    """kombu's ``amqp://`` transport with buffered reads."""

    Connection = BufferedConnection


assert issubclass(BufferedConnection, amqp.Connection)
