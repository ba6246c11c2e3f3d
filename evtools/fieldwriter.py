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

    ``owner`` supplies ``max_field_size`` (read when a big field is written, so a change
    takes effect at once) and counts cut fields in ``truncated``; ``share(value, value)``
    returns the one copy of a string; ``cut(value, limit)`` returns a value cut to size.
    """

    __slots__ = ("spec", "namespace", "writers")

    def __init__(self, spec: FieldSpec, owner: Any, share: Callable[[str, str], str],
                 cut: Callable[[str, int], str]) -> None:
        self.spec = spec
        self.namespace = {"owner": owner, "share": share, "cut": cut}
        self.writers: dict[tuple, Writer] = {}

    def writer_for(self, event: Mapping[str, Any]) -> Writer:
        """Return the writer for events shaped like ``event``."""
        shape = tuple(event)
        writer = self.writers.get(shape)
        if writer is None:
            if len(self.writers) >= MAX_SHAPES:
                self.writers.clear()
            writer = self.writers[shape] = self._compile(shape)
        return writer

    def write(self, target: Any, event: Mapping[str, Any]) -> None:
        """Copy ``event``'s fields onto ``target``."""
        writer = self.writers.get(tuple(event))
        if writer is None:
            writer = self.writer_for(event)
        writer(target, event)

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
