"""The two implementations behind one face: a State, a receiver, the dump command, a screen.

Each function takes ``impl`` (``"evtools"`` or ``"celery"``) and imports only that library,
so a measurement of one never pays for loading the other.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

__all__ = ("IMPLS", "new_state", "new_receiver", "dump_command", "library_versions")

IMPLS = ("evtools", "celery")

#: Receiver queues the benchmark fills first must outlive the wait: no message TTL, not
#: exclusive to one connection; removed after this many seconds unused.
QUEUE_EXPIRES = 600.0

Handler = Callable[[dict[str, Any]], Any]


def _check(impl: str) -> None:
    if impl not in IMPLS:
        raise ValueError(f"unknown implementation {impl!r} (expected one of {IMPLS})")


def new_state(impl: str, max_tasks: int | None = None) -> Any:
    """A fresh State; ``max_tasks=None`` keeps the library's default limit (10,000 in both)."""
    _check(impl)
    if impl == "celery":
        from celery.events.state import State
    else:
        from evtools.state import State
    return State() if max_tasks is None else State(max_tasks_in_memory=max_tasks)


def _celery_app(url: str, ssl: dict[str, Any] | None = None) -> Any:
    from celery import Celery

    app = Celery("bench", broker=url, set_as_current=False)
    app.conf.update(event_queue_ttl=None, event_queue_expires=QUEUE_EXPIRES,
                    event_queue_exclusive=False)
    if ssl:
        from evtools.transport.broker import ssl_options_for

        app.conf.broker_use_ssl = ssl_options_for(url.split("://")[0], ssl)
    return app


def new_receiver(impl: str, url: str, handler: Handler, node_id: str, path: str = "cli",
                 ssl: dict[str, Any] | None = None) -> Any:
    """A receiver on ``url`` calling ``handler`` for every event, its queue named by ``node_id``.

    Both use the queue the benchmark declares (no message TTL, not exclusive); the result has
    ``capture(limit, timeout, wakeup)`` and a ``should_stop`` flag. Each connects as its own
    tools do: Celery with ``app.connection_for_read()``, evtools with
    ``evtools.transport.broker.connection_for`` (its read-ahead transports, after their probe).
    ``path="library"`` connects as a library user following each README does: Celery's
    receiver on ``kombu.Connection(url)``, evtools' on ``evtools.connect(url)``.
    ``ssl`` (TLS options in either spelling, as ``broker_use_ssl``) applies to the cli path.
    """
    _check(impl)
    if path == "library":
        if ssl:
            raise ValueError("TLS options are for the cli path")
        return _library_receiver(impl, url, handler, node_id)
    if impl == "celery":
        app = _celery_app(url, ssl)
        return app.events.Receiver(app.connection_for_read(), handlers={"*": handler},
                                   node_id=node_id)
    from evtools.transport.broker import connection_for
    from evtools.config import Settings
    from evtools.receiver import EventReceiver

    settings = Settings(broker_url=url, event_queue_ttl=None, event_queue_expires=QUEUE_EXPIRES,
                        event_queue_exclusive=False, broker_use_ssl=ssl or None)
    return EventReceiver(connection_for(settings), handlers={"*": handler}, node_id=node_id,
                         settings=settings)


def _library_receiver(impl: str, url: str, handler: Handler, node_id: str) -> Any:
    queue_options = {"event_queue_ttl": None, "event_queue_expires": QUEUE_EXPIRES,
                     "event_queue_exclusive": False}
    if impl == "celery":
        from kombu import Connection

        app = _celery_app(url)
        return app.events.Receiver(Connection(url), handlers={"*": handler}, node_id=node_id)
    import evtools
    from evtools.config import Settings
    from evtools.receiver import EventReceiver

    return EventReceiver(evtools.connect(url), handlers={"*": handler}, node_id=node_id,
                         settings=Settings(broker_url=url, **queue_options))


def dump_command(impl: str, url: str) -> list[str]:
    """The command line of the implementation's ``--dump`` (human format to stdout)."""
    _check(impl)
    if impl == "celery":
        return [sys.executable, "-m", "celery", "-b", url, "events", "--dump"]
    return [sys.executable, "-m", "evtools", "events", "--dump", "-b", url]


def library_versions() -> dict[str, str]:
    """The versions of the libraries under test and of what they stand on."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("evtools", "celery", "kombu", "amqp", "redis"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found
