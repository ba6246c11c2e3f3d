"""Event filters for the dump: shell globs over the event type, the hostname and the task name."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from typing import Any

__all__ = ("EventFilter",)


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
