"""Copying an event's fields onto a task's slots: one small compiled function per event shape.

A task keeps its fields in ``__slots__`` (a third of the memory of a ``__dict__``), so
it cannot take ``__dict__.update(event)`` as Celery's does, and a loop of ``setattr``
calls costs twice a run of plain attribute assignments. Events of one kind from one
sender carry the same keys in the same order, so the sorting of keys into slots, big
fields (cut to a size), repeated strings (shared) and extra attributes is done once per
shape of event; the result is a function of plain assignments, for example::

    def write(task, event):
        task.type = share(event['type'], event['type'])
        task.pid = event['pid']
        value = event['args']
        if value.__class__ is str and len(value) > (limit := owner.max_field_size or ...):
            ...
        task.args = value

Only names from :class:`FieldSpec` (the task's own slot names, fixed in the code) are
ever written into the generated source; keys that come from the event and are not slots
are copied by a loop over a tuple, never pasted into code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ("FieldSpec", "WriterCache", "Writer")

#: ``write(task, event)``: copies the event's fields onto the task.
Writer = Callable[[Any, Mapping[str, Any]], None]

#: Event shapes remembered per cache; a stream of ever new shapes only costs a rebuild.
MAX_SHAPES = 512

#: A shape is compiled the time it comes for this many times (events of a kind repeat).
COMPILE_AFTER = 3


@dataclass(frozen=True)
class FieldSpec:
    """Which event keys go where on the target object."""

    #: Keys written to the slot of the same name.
    slots: frozenset[str]
    #: Slots whose string values are cut to ``owner.max_field_size`` characters.
    big: frozenset[str]
    #: Slots whose string values are replaced by one shared copy.
    shared: frozenset[str]
    #: Keys never written (reserved names), in addition to those starting with ``_``.
    reserved: frozenset[str]


class WriterCache:
    """Compiled writers by event shape (the tuple of its keys), bounded.

    A shape is compiled once it has come :data:`COMPILE_AFTER` times; until then (and for
    a stream of ever new shapes, which would otherwise cost a compilation per event) the
    same copy is made by a plain loop, :meth:`write_slowly`.

    ``owner`` supplies ``max_field_size`` (read when a big field is written, so a change
    takes effect at once) and counts cut fields in ``truncated``; ``share(value, value)``
    returns the one copy of a string; ``cut(value, limit)`` returns a value cut to size.
    """

    __slots__ = ("cut", "namespace", "owner", "seen", "share", "spec", "writers")

    def __init__(self, spec: FieldSpec, owner: Any, share: Callable[[str, str], str],
                 cut: Callable[[str, int], str]) -> None:
        self.spec = spec
        self.owner, self.share, self.cut = owner, share, cut
        self.namespace = {"owner": owner, "share": share, "cut": cut}
        self.writers: dict[tuple, Writer] = {}
        #: How often each shape not compiled yet has come.
        self.seen: dict[tuple, int] = {}

    def writer_for(self, event: Mapping[str, Any]) -> Writer:
        """Return the compiled writer for events shaped like ``event``."""
        shape = tuple(event)
        writer = self.writers.get(shape)
        if writer is None:
            if len(self.writers) >= MAX_SHAPES:
                self.writers.clear()
            writer = self.writers[shape] = self._compile(shape)
            self.seen.pop(shape, None)
        return writer

    def write(self, target: Any, event: Mapping[str, Any]) -> None:
        """Copy ``event``'s fields onto ``target``."""
        writer = self.writers.get(tuple(event))
        if writer is not None:
            writer(target, event)
            return
        shape = tuple(event)
        count = self.seen.get(shape, 0) + 1
        if count >= COMPILE_AFTER:
            self.writer_for(event)(target, event)
            return
        if len(self.seen) >= MAX_SHAPES:
            self.seen.clear()
        self.seen[shape] = count
        self.write_slowly(target, event)

    def write_slowly(self, target: Any, event: Mapping[str, Any]) -> None:
        """What a compiled writer does, one key at a time."""
        spec = self.spec
        for key, value in event.items():
            if key in spec.slots:
                if value.__class__ is str:
                    if key in spec.big:
                        limit = self.owner.max_field_size
                        if limit is not None and len(value) > limit:
                            value = self.cut(value, limit)
                            self.owner.truncated += 1
                    elif key in spec.shared:
                        value = self.share(value, value)
                setattr(target, key, value)
            elif type(key) is str and key not in spec.reserved and not key.startswith("_"):
                target.__dict__[key] = value

    def _compile(self, shape: tuple) -> Writer:
        spec = self.spec
        lines = ["def write(task, event):"]
        extra = []
        for key in shape:
            if key in spec.slots:
                lines.extend(_assignment(key, spec))
            elif type(key) is str and key not in spec.reserved and not key.startswith("_"):
                extra.append(key)
        if extra:
            lines.append("    found = task.__dict__")
            lines.append("    for key in EXTRA:")
            lines.append("        found[key] = event[key]")
        if len(lines) == 1:
            lines.append("    pass")
        namespace = dict(self.namespace, EXTRA=tuple(extra))
        exec("\n".join(lines), namespace)  # noqa: S102 - source made of our own slot names only
        return namespace["write"]


def _assignment(key: str, spec: FieldSpec) -> list[str]:
    """Source lines copying ``event[key]`` to ``task.<key>`` (``key`` is one of our slots)."""
    if not key.isidentifier():
        raise ValueError(f"not a slot name: {key!r}")
    if key in spec.big:
        return [f"    value = event[{key!r}]",
                "    if value.__class__ is str:",
                "        limit = owner.max_field_size",
                "        if limit is not None and len(value) > limit:",
                "            value = cut(value, limit)",
                "            owner.truncated += 1",
                f"    task.{key} = value"]
    if key in spec.shared:
        return [f"    value = event[{key!r}]",
                f"    task.{key} = share(value, value) if value.__class__ is str else value"]
    return [f"    task.{key} = event[{key!r}]"]
