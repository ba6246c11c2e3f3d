"""Tasks in event order: each task at its newest and at its oldest event, by Lamport clock."""

from __future__ import annotations

from bisect import insort
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ("Timeline", "time_key")

#: A list is compacted when it holds twice as many entries as there are live tasks, plus
#: this slack: each stale entry then costs two checks, and at most one stale entry per task
#: is held (about 130 bytes).
COMPACT_SLACK = 1024


def time_key(clock: int, origin: str, timestamp: float, uuid: str) -> tuple[int, str, float, str]:
    """Return the ordering key of one task event: clock, then origin, then time.

    This is the order of Celery's ``timetuple`` (equal clocks are ordered by origin),
    made of plain values so that comparisons stay in C.
    """
    return (clock, origin, timestamp, uuid)


class Timeline:
    """Two sorted lists of event keys, one entry per task that is current.

    A task keeps the key it is filed under in ``task._newest`` / ``task._oldest``;
    an entry whose task moved on (or was forgotten) is stale and skipped, and stale
    entries are dropped in one pass once they outnumber live ones. Appending is the
    common case (events mostly arrive in clock order), so adding is O(1) amortised.
    """

    __slots__ = ("newest", "oldest", "tasks", "_compact_newest_at", "_compact_oldest_at")

    def __init__(self, tasks: Mapping[str, Any]) -> None:
        self.newest: list[tuple] = []
        self.oldest: list[tuple] = []
        self.tasks = tasks
        self._compact_newest_at = self._compact_oldest_at = COMPACT_SLACK

    def add(self, task: Any, key: tuple) -> None:
        """File ``task`` under ``key`` if it is newer than its newest or older than its oldest."""
        current = task._newest
        if current is None or key > current:
            task._newest = key
            entries = self.newest
            if not entries or key > entries[-1]:
                entries.append(key)
            else:
                insort(entries, key)
            if len(entries) > self._compact_newest_at:
                self._compact_newest()
        current = task._oldest
        if current is None or key < current:
            task._oldest = key
            entries = self.oldest
            if not entries or key > entries[-1]:
                entries.append(key)
            else:
                insort(entries, key)
            if len(entries) > self._compact_oldest_at:
                self._compact_oldest()

    def compact(self) -> None:
        """Drop stale entries from both lists."""
        self._compact_newest()
        self._compact_oldest()

    def _compact_newest(self) -> None:
        get = self.tasks.get
        self.newest = [k for k in self.newest if getattr(get(k[3]), "_newest", None) is k]
        self._compact_newest_at = len(self.newest) * 2 + COMPACT_SLACK

    def _compact_oldest(self) -> None:
        get = self.tasks.get
        self.oldest = [k for k in self.oldest if getattr(get(k[3]), "_oldest", None) is k]
        self._compact_oldest_at = len(self.oldest) * 2 + COMPACT_SLACK

    def clear(self) -> None:
        """Forget every entry."""
        self.newest.clear()
        self.oldest.clear()
        self._compact_newest_at = self._compact_oldest_at = COMPACT_SLACK

    def __len__(self) -> int:
        return len(self.newest)

    def iter_tasks(self, reverse: bool = True) -> Iterator[tuple[str, Any]]:
        """Yield ``(uuid, task)``: newest event first, or (``reverse=False``) oldest event first."""
        get = self.tasks.get
        if reverse:
            for key in reversed(self.newest):
                task = get(key[3])
                if task is not None and task._newest is key:
                    yield key[3], task
        else:
            for key in list(self.oldest):
                task = get(key[3])
                if task is not None and task._oldest is key:
                    yield key[3], task
