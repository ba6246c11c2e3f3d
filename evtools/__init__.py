"""evtools: watch a Celery cluster's event stream, without Celery.

The public names mirror ``celery.events``: ``evtools.state`` for ``celery.events.state``,
``evtools.states`` for ``celery.states``, and so on.
"""

from __future__ import annotations

from .dispatcher import EventDispatcher
from .event import Event, get_exchange, group_from
from .receiver import EventReceiver
from .snapshot import Polaroid
from .state import State

__version__ = "0.1.0"

__all__ = ("Event", "EventDispatcher", "EventReceiver", "Polaroid", "State", "get_exchange",
           "group_from", "__version__")
