"""evtools: watch a Celery cluster's event stream, without Celery.

The public names mirror ``celery.events``: ``evtools.state`` for ``celery.events.state``,
``evtools.states`` for ``celery.states``, and so on. They are imported when first used, so
``import evtools`` (or ``evtools.state``) loads neither kombu nor any broker client.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .dispatcher import EventDispatcher
    from .event import Event, get_exchange, group_from
    from .receiver import EventReceiver
    from .snapshot import Polaroid
    from .state import State
    from .transport import connect

__version__ = "0.1.0"

__all__ = ("Event", "EventDispatcher", "EventReceiver", "Polaroid", "State", "connect",
           "get_exchange", "group_from", "__version__")

#: public name -> the module that defines it
_WHERE = {
    "Event": "event", "get_exchange": "event", "group_from": "event",
    "EventDispatcher": "dispatcher", "EventReceiver": "receiver", "Polaroid": "snapshot",
    "State": "state", "connect": "transport",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'evtools' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
