"""A bounded mapping that forgets its oldest keys first; reading with ``[]`` renews a key."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any, Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

__all__ = ("LRUMap",)


class LRUMap(MutableMapping, Generic[K, V]):
    """A mapping of at most ``limit`` items; reading an item with ``[]`` makes it the newest.

    ``data`` is the underlying :class:`~collections.OrderedDict` (oldest first); reading
    through it does not reorder. ``on_evict(key, value)`` is called for every item pushed
    out by the limit, so indexes built on top can forget it too.
    """

    __slots__ = ("data", "limit", "on_evict")

    def __init__(self, limit: int | None = None,
                 on_evict: Callable[[K, V], None] | None = None) -> None:
        self.data: OrderedDict[K, V] = OrderedDict()
        self.limit = limit
        self.on_evict = on_evict

    def __getitem__(self, key: K) -> V:
        value = self.data[key]
        self.data.move_to_end(key)
        return value

    def __setitem__(self, key: K, value: V) -> None:
        data = self.data
        if key in data:  # replacing keeps the item's place, as kombu's LRUCache does
            data[key] = value
            return
        data[key] = value
        if self.limit and len(data) > self.limit:
            self.evict(len(data) - self.limit)

    def evict(self, count: int = 1) -> None:
        """Forget the ``count`` oldest items."""
        data, on_evict = self.data, self.on_evict
        for _ in range(count):
            key, value = data.popitem(last=False)
            if on_evict is not None:
                on_evict(key, value)

    def __delitem__(self, key: K) -> None:
        del self.data[key]

    def __contains__(self, key: object) -> bool:
        return key in self.data

    def __iter__(self) -> Iterator[K]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"LRUMap(limit={self.limit}, {dict(self.data)!r})"

    def keys(self):  # type: ignore[override]
        """Keys, oldest first (a view: no reordering)."""
        return self.data.keys()

    def values(self):  # type: ignore[override]
        """Values, oldest first (a view: no reordering)."""
        return self.data.values()

    def items(self):  # type: ignore[override]
        """Items, oldest first (a view: no reordering)."""
        return self.data.items()

    def clear(self) -> None:
        """Forget everything (without calling ``on_evict``)."""
        self.data.clear()

    def __getstate__(self) -> dict[str, Any]:
        return {"data": self.data, "limit": self.limit}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.data = state["data"]
        self.limit = state["limit"]
        self.on_evict = None
