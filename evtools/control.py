"""Remote control of workers over kombu's pidbox, speaking Celery's control protocol."""

from __future__ import annotations

from typing import Any

from kombu import Connection
from kombu.pidbox import Mailbox

from .config import Settings

__all__ = ("mailbox_for", "broadcast")


def mailbox_for(settings: Settings | None = None) -> Mailbox:
    """Return the mailbox Celery workers listen on: exchange ``<control_exchange>.pidbox``."""
    settings = settings or Settings()
    return Mailbox(settings.control_exchange, type="fanout", accept=["json"], serializer="json")


def broadcast(connection: Connection, command: str, arguments: dict[str, Any] | None = None,
              destination: list[str] | None = None, reply: bool = False, timeout: float = 1.0,
              limit: int | None = None, channel: Any = None,
              settings: Settings | None = None) -> list[dict[str, Any]] | None:
    """Send ``command`` to every worker (or those in ``destination``); return replies if asked."""
    bound = mailbox_for(settings)(connection)
    return bound._broadcast(command, arguments or {}, destination, reply, timeout, limit,
                            channel=channel)
