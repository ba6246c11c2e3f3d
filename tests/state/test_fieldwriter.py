"""The compiled field writers: what lands where, for every shape of event."""

from types import SimpleNamespace

import pytest

from evtools import fieldwriter
from evtools.fieldwriter import FieldSpec, WriterCache


class Target:
    __slots__ = ("name", "args", "type", "pid", "__dict__")


SPEC = FieldSpec(slots=frozenset({"name", "args", "type", "pid"}), big=frozenset({"args"}),
                 shared=frozenset({"type", "name"}), reserved=frozenset({"uuid", "event"}))


def make_cache(limit=10):
    owner = SimpleNamespace(max_field_size=limit, truncated=0)
    strings = {}
    return WriterCache(SPEC, owner, strings.setdefault, lambda v, n: v[:n] + "~"), owner, strings


def test_slots_extras_and_reserved_keys_land_where_they_belong():
    cache, _, _ = make_cache()
    target = Target()
    cache.write(target, {"uuid": "u1", "name": "add", "pid": 7, "custom": [1], "_private": 1,
                         "event": "no", 3: "not a name"})
    assert (target.name, target.pid) == ("add", 7)
    assert target.__dict__ == {"custom": [1]}
    assert not hasattr(target, "args")


def test_big_fields_are_cut_and_counted_and_the_limit_is_read_at_each_write():
    cache, owner, _ = make_cache(limit=5)
    target = Target()
    cache.write(target, {"args": "x" * 8})
    assert target.args == "xxxxx~" and owner.truncated == 1
    owner.max_field_size = None
    cache.write(target, {"args": "y" * 8})
    assert target.args == "y" * 8 and owner.truncated == 1
    cache.write(target, {"args": ["not", "a", "string"]})
    assert target.args == ["not", "a", "string"] and owner.truncated == 1


def test_repeated_strings_are_shared_and_other_values_left_alone():
    cache, _, strings = make_cache()
    first, second = Target(), Target()
    cache.write(first, {"name": "".join(["sh", "op"]), "type": "task-sent"})
    cache.write(second, {"name": "".join(["sh", "op"]), "type": {"odd": 1}})
    assert first.name is second.name and strings["shop"] is first.name
    assert second.type == {"odd": 1}


def test_hostile_keys_are_never_written_into_code():
    cache, _, _ = make_cache()
    target = Target()
    evil = "x = __import__('os').system('touch /tmp/evtools-pwned')\n"
    for _ in range(fieldwriter.COMPILE_AFTER + 1):  # the plain loop, then the compiled writer
        cache.write(target, {evil: 1, "a b": 2, "name": "n"})
    assert len(cache.writers) == 1
    assert target.__dict__ == {evil: 1, "a b": 2} and target.name == "n"
    with pytest.raises(ValueError):
        fieldwriter._assignment("not an identifier", SPEC)


def test_a_shape_is_compiled_once_it_repeats_and_the_caches_stay_bounded():
    cache, _, _ = make_cache()
    target = Target()
    for n in range(fieldwriter.COMPILE_AFTER - 1):
        cache.write(target, {"name": f"a{n}", "pid": n})
    assert not cache.writers and cache.seen == {("name", "pid"): fieldwriter.COMPILE_AFTER - 1}
    cache.write(target, {"name": "b", "pid": 2})
    cache.write(target, {"pid": 3, "name": "c"})  # other order, other shape
    assert list(cache.writers) == [("name", "pid")] and (target.name, target.pid) == ("c", 3)
    for n in range(fieldwriter.MAX_SHAPES + 10):  # ever new shapes: never compiled
        cache.write(target, {f"k{n}": n})
    assert len(cache.writers) == 1 and len(cache.seen) <= fieldwriter.MAX_SHAPES
    assert target.__dict__[f"k{fieldwriter.MAX_SHAPES + 9}"] == fieldwriter.MAX_SHAPES + 9


EVENTS = [
    {"uuid": "u", "name": "shop", "args": "x" * 30, "type": "task-sent", "pid": 4, "extra": 1},
    {"name": ["not", "str"], "args": ["list"], "type": None, "_hidden": 2, "event": 3, 7: 8},
    {"args": "short", "name": "n" * 40, "custom": {"a": 1}},
    {},
]


@pytest.mark.parametrize("event", EVENTS)
def test_the_plain_loop_and_the_compiled_writer_leave_the_same_task(event):
    slow_cache, slow_owner, _ = make_cache(limit=10)
    fast_cache, fast_owner, _ = make_cache(limit=10)
    slow, fast = Target(), Target()
    slow_cache.write_slowly(slow, event)
    fast_cache.writer_for(event)(fast, event)
    for name in Target.__slots__[:-1]:
        assert getattr(slow, name, "unset") == getattr(fast, name, "unset")
    assert slow.__dict__ == fast.__dict__ and slow_owner.truncated == fast_owner.truncated


def test_an_empty_event_writes_nothing():
    cache, _, _ = make_cache()
    target = Target()
    cache.write(target, {})
    assert target.__dict__ == {}
