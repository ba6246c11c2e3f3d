"""The size of a State does not grow with the length of the stream, whatever the fields do.

For each hostile stream, the objects reachable from a State after 4N events are no more
than after N events, beyond a small constant.  The fixed-capacity caches (shared strings,
split event types, compiled field writers) are left out of that walk and checked against
their own caps instead: they fill up and start again (the time ordering drops its stale
entries once they outnumber live ones), so their size swings by design.
"""

from __future__ import annotations

import gc
import time
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from evtools.fieldwriter import MAX_SHAPES
from evtools.state import SEEN_TYPES_MIN, SHARED_STRINGS_LIMIT, State
from evtools.timeline import COMPACT_SLACK

N = 3000
SLACK = 200  # objects: a few tasks' worth of fields
MAX_TASKS = 10
NOW = time.time()

#: Attributes of a State that are caches with a fixed capacity (checked separately).
CAPPED_CACHES = ("_strings", "_type_parts", "_task_fields", "_write_task_fields", "_timeline")
NOT_DATA = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType,
            types.CodeType, types.MethodType)


def deep_size(state: State) -> int:
    """Count the distinct objects reachable from ``state``, capped caches left out."""
    skip = {id(getattr(state, name)) for name in CAPPED_CACHES}
    skip.add(id(state._mutex))
    seen: set[int] = set()
    stack: list[Any] = [state]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or id(obj) in skip or isinstance(obj, NOT_DATA):
            continue
        seen.add(id(obj))
        stack.extend(gc.get_referents(obj))
    return len(seen)


def event(type_: str, uuid: str, clock: int, hostname: str = "w1@h", **fields: Any) -> dict:
    return dict(type=type_, uuid=uuid, hostname=hostname, clock=clock, timestamp=NOW + clock,
                local_received=NOW + clock, **fields)


def parent_flips(n: int) -> Iterator[dict]:
    """Issue 11: ``parent_id`` is 'p1' in one event and None in the next."""
    for i in range(n // 2):
        yield event("task-received", f"t{i}", 2 * i + 1, parent_id="p1", name="a")
        yield event("task-started", f"t{i}", 2 * i + 2, parent_id=None)


def fresh_parents(n: int) -> Iterator[dict]:
    """Every event names a parent never seen, and a child changes parents."""
    for i in range(n // 2):
        yield event("task-received", f"t{i}", 2 * i + 1, parent_id=f"p{i}")
        yield event("task-started", "the-child", 2 * i + 2, parent_id=f"q{i}")


def parent_and_child_churn(n: int) -> Iterator[dict]:
    """Parents and children come and go under the limit, in both orders."""
    for i in range(n // 2):
        yield event("task-received", f"c{i}", 2 * i + 1, parent_id=f"c{i - 1}")
        yield event("task-received", f"c{i - 3}", 2 * i + 2, parent_id=f"c{i + 2}")


def changing_names(n: int) -> Iterator[dict]:
    """A task's name changes, and stops being a string."""
    odd: list[Any] = [5, None, ["a", "list"], {"a": "dict"}, 2.5]
    for i in range(n):
        name = f"name{i}" if i % 2 else odd[i % len(odd)]
        yield event("task-received", f"t{i % 37}", i + 1, name=name)


def fresh_workers(n: int) -> Iterator[dict]:
    """Every task event comes from a worker never seen before; workers come and go."""
    for i in range(n):
        if i % 3 == 0:
            yield dict(type="worker-online", hostname=f"w{i}@h", timestamp=NOW,
                       local_received=NOW, freq=2.0, pid=i, clock=i)
        else:
            yield event("task-started", f"t{i}", i + 1, hostname=f"w{i}@h")


def fresh_shapes(n: int) -> Iterator[dict]:
    """Every event carries a field never seen before."""
    for i in range(n):
        yield event("task-received", f"t{i}", i + 1, **{f"field{i}": i, "name": "a"})


def custom_types(n: int) -> Iterator[dict]:
    """Every event has a type never seen before."""
    for i in range(n):
        yield event(f"task-custom{i}", f"t{i % 50}", i + 1)


def malformed(n: int) -> Iterator[dict]:
    """Events Celery would refuse: each is counted by kind, never stored."""
    required = ("uuid", "hostname", "timestamp", "local_received", "clock")
    for i in range(n):
        full = event("task-received", f"t{i}", i + 1, name="a")
        del full[required[i % len(required)]]
        yield full


STREAMS: dict[str, Callable[[int], Iterator[dict]]] = {
    f.__name__: f for f in (parent_flips, fresh_parents, parent_and_child_churn, changing_names,
                            fresh_workers, fresh_shapes, custom_types, malformed)
}


@pytest.mark.parametrize("stream", STREAMS)
def test_state_size_does_not_grow_with_the_stream(stream: str) -> None:
    state = State(max_tasks_in_memory=MAX_TASKS, max_workers_in_memory=5)
    events = STREAMS[stream](4 * N)
    for _ in range(N):
        state.event(next(events))
    after_n = deep_size(state)
    for remaining in events:
        state.event(remaining)
    after_4n = deep_size(state)
    assert state.event_count == 4 * N
    assert after_4n <= after_n + SLACK, (after_n, after_4n)
    assert len(state._strings) <= SHARED_STRINGS_LIMIT + 1
    assert len(state._type_parts) <= SHARED_STRINGS_LIMIT
    assert len(state._task_fields.writers) <= MAX_SHAPES
    assert len(state._seen_types) <= max(MAX_TASKS, SEEN_TYPES_MIN)
    for entries in (state._timeline.newest, state._timeline.oldest):
        assert len(entries) <= 2 * MAX_TASKS + COMPACT_SLACK + 1


def test_the_size_walk_sees_growth() -> None:
    """The walk itself can fail: a State holding more tasks is bigger."""
    small, big = State(max_tasks_in_memory=10), State(max_tasks_in_memory=1000)
    for state in (small, big):
        for i in range(500):
            state.event(event("task-received", f"t{i}", i + 1, name="a", parent_id="p"))
    assert deep_size(big) > deep_size(small) + 1000
