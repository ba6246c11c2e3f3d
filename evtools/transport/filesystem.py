"""kombu's filesystem transport, made safe for several processes at once.

kombu's writer creates a message file and then writes it, while a reader in another process
may already move it away and read it empty: the message is lost and the reader raises. Here a
message is written under a temporary name and renamed into place (atomic on POSIX), and a
reader skips, with a warning, a file it cannot decode instead of failing.
"""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from queue import Empty
from time import monotonic_ns
from typing import Any

from kombu.transport import filesystem
from kombu.utils.json import dumps, loads

__all__ = ("Transport", "Channel")

logger = logging.getLogger(__name__)

#: Prefix of files still being written; readers never look at them.
PARTIAL_PREFIX = ".partial-"


class Channel(filesystem.Channel):
    """A filesystem channel whose messages appear whole or not at all."""

    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        # kombu's name, <ms>_<uuid>, sorts messages written in the same millisecond at random;
        # the nanoseconds after the milliseconds keep them in the order they were written.
        now = monotonic_ns()
        name = f"{now // 1_000_000}_{now:020d}-{uuid.uuid4()}.{queue}.msg"
        folder = self.data_folder_out
        fd, partial = tempfile.mkstemp(prefix=PARTIAL_PREFIX, dir=folder)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(dumps(payload).encode("utf-8"))
            os.rename(partial, os.path.join(folder, name))
        except OSError as exc:
            try:
                os.unlink(partial)
            except OSError:
                pass
            raise filesystem.ChannelError(f"Cannot add file {name!r} to directory") from exc

    def _get(self, queue: str) -> Any:
        suffix = f".{queue}.msg"
        folder = self.data_folder_in
        for name in sorted(os.listdir(folder)):
            if name.startswith(PARTIAL_PREFIX) or not name.endswith(suffix) \
                    or name.partition(".")[2] != suffix[1:]:
                continue
            path = os.path.join(folder, name)
            claimed = f"{path}.{os.getpid()}.reading"
            try:
                os.rename(path, claimed)  # only one reader wins a message
            except OSError:
                continue
            try:
                with open(claimed, "rb") as fh:
                    payload = fh.read()
            finally:
                try:
                    os.unlink(claimed)
                except OSError:
                    pass
            try:
                message = loads(payload.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                logger.warning("skipping an unreadable message file %s", name)
                continue
            if not _is_message(message):
                logger.warning("skipping a message file that is not a kombu message: %s", name)
                continue
            return message
        raise Empty()


def _is_message(message: Any) -> bool:
    """Whether ``message`` has what kombu's virtual transport reads from every message."""
    if type(message) is not dict:
        return False
    properties = message.get("properties")
    return (type(properties) is dict and "delivery_tag" in properties
            and type(properties.get("delivery_info", {})) is dict
            and type(message.get("headers") or {}) is dict)


class Transport(filesystem.Transport):
    """kombu's filesystem transport with :class:`Channel`."""

    Channel = Channel
