"""Event filters: shell globs over the event type, the hostname and the task name.

:class:`EventFilter` decides, in-process, which events are kept. :func:`binding_keys` turns
the type globs into routing keys for the broker, so that most unwanted events are never
delivered; the keys may let more through than the globs (never less), and the EventFilter
stays the source of truth.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Iterable
from typing import Any

__all__ = ("EventFilter", "binding_keys", "binds", "MULTI_KEY", "ALL_KEYS")

#: The routing key that matches every event (Celery's default binding).
ALL_KEYS = "#"

#: Celery's prefork workers send several task events as one list on this routing key.
MULTI_KEY = "task.multi"

#: Characters that make a word of a type glob more than a literal word (``#`` is a
#: wildcard in AMQP binding keys, ``\\`` an escape in Redis patterns).
_UNSAFE = frozenset("*?[]#\\")


def _compile(globs: Iterable[str]) -> re.Pattern[str] | None:
    globs = [g for g in globs if g]
    if not globs:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(g)})" for g in globs))


class EventFilter:
    """Keep an event when it matches every kind of glob given (any glob within a kind).

    ``types`` match the event type (``task-fail*``), ``hostnames`` the sender's hostname,
    ``tasks`` the task name (only task events can match; the name may come from an earlier
    event of the same task).
    """

    __slots__ = ("types", "hostnames", "tasks")

    def __init__(self, types: Iterable[str] = (), hostnames: Iterable[str] = (),
                 tasks: Iterable[str] = ()) -> None:
        self.types = _compile(types)
        self.hostnames = _compile(hostnames)
        self.tasks = _compile(tasks)

    def __bool__(self) -> bool:
        return any(p is not None for p in (self.types, self.hostnames, self.tasks))

    def matches(self, event: dict[str, Any], task_name: str | None = None) -> bool:
        """Return whether ``event`` passes; ``task_name`` is the name known for its task."""
        if self.types is not None and not self.types.match(str(event.get("type", ""))):
            return False
        if self.hostnames is not None and not self.hostnames.match(str(event.get("hostname", ""))):
            return False
        if self.tasks is not None:
            name = task_name if task_name is not None else event.get("name")
            if not isinstance(name, str) or not self.tasks.match(name):
                return False
        return True


def _key_for(glob: str) -> str:
    """Return the narrowest binding key that lets through every event type ``glob`` matches.

    An event type's words (``task-failed``) travel as routing-key words (``task.failed``).
    A literal word stays; a word that is just ``*`` becomes ``#`` (a shell ``*`` also
    matches dashes, so it may stand for several words); from the first word holding any
    other wildcard on, the rest of the key is ``#``.
    """
    words: list[str] = []
    for word in glob.split("-"):
        if word == "*" or _UNSAFE.intersection(word):
            if not words or words[-1] != ALL_KEYS:
                words.append(ALL_KEYS)
            if word != "*":
                break
        else:
            words.append(word)
    return ".".join(words)


def _as_pattern(key: str) -> str:
    """A binding key as the glob Redis matches channels with (what kombu makes of it)."""
    return key.replace("#", "*")


def _overlap(a: str, b: str) -> bool:
    """Tell whether some string matches both globs ``a`` and ``b`` (``*`` their only wildcard)."""

    @functools.cache
    def at(i: int, j: int) -> bool:
        if i == len(a) or j == len(b):
            return all(c == "*" for c in a[i:] + b[j:])
        if a[i] == "*":
            return at(i + 1, j) or at(i, j + 1)
        if b[j] == "*":
            return at(i, j + 1) or at(i + 1, j)
        return a[i] == b[j] and at(i + 1, j + 1)

    return at(0, 0)


def _covers(wide: str, narrow: str) -> bool:
    """Tell whether every routing key bound by ``narrow`` is also bound by ``wide``."""
    return fnmatch.fnmatchcase(_as_pattern(narrow), _as_pattern(wide))


def binding_keys(types: Iterable[str]) -> tuple[str, ...]:
    """Return the routing keys to bind for these event type globs: ``('#',)`` when none are given.

    ``task-failed`` gives ``task.failed``, ``worker-*`` ``worker.#``, ``task-fail*`` the
    wider ``task.#``. When task events may be wanted, ``task.multi`` (a list of task events)
    is bound too. No two keys returned overlap, since Redis delivers a message once for
    each pattern it matches; keys that would overlap give ``('#',)``.
    """
    keys: list[str] = []
    for glob in dict.fromkeys(g for g in types if g):
        keys.append(_key_for(glob))
    if not keys:
        return (ALL_KEYS,)
    if any(_overlap(_as_pattern(key), "task.*") for key in keys):
        keys.append(MULTI_KEY)
    kept = [key for i, key in enumerate(keys)
            if not any(_covers(other, key) and (other != key or j < i)
                       for j, other in enumerate(keys) if j != i)]
    for i, key in enumerate(kept):
        if any(_overlap(_as_pattern(key), _as_pattern(other)) for other in kept[i + 1:]):
            return (ALL_KEYS,)
    return tuple(kept)


def binds(keys: Iterable[str], routing_key: str) -> bool:
    """Tell whether a message with ``routing_key`` reaches a queue bound with ``keys``."""
    return any(_covers(key, routing_key) for key in keys)
