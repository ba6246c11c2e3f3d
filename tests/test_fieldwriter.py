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
    cache.write(target, {evil: 1, "a b": 2, "name": "n"})
    assert target.__dict__ == {evil: 1, "a b": 2} and target.name == "n"
    with pytest.raises(ValueError):
        fieldwriter._assignment("not an identifier", SPEC)


def test_one_writer_per_shape_and_the_cache_stays_bounded():
    cache, _, _ = make_cache()
    target = Target()
    cache.write(target, {"name": "a", "pid": 1})
    cache.write(target, {"name": "b", "pid": 2})
    cache.write(target, {"pid": 3, "name": "c"})  # other order, other shape
    assert len(cache.writers) == 2 and (target.name, target.pid) == ("c", 3)
    for n in range(fieldwriter.MAX_SHAPES + 10):
        cache.write(target, {f"k{n}": n})
    assert len(cache.writers) <= fieldwriter.MAX_SHAPES
    assert target.__dict__[f"k{fieldwriter.MAX_SHAPES + 9}"] == fieldwriter.MAX_SHAPES + 9


def test_an_empty_event_writes_nothing():
    cache, _, _ = make_cache()
    target = Target()
    cache.write(target, {})
    assert target.__dict__ == {}
