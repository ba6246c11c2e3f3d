"""Type globs pushed down to the broker as binding keys (evtools.filters.binding_keys)."""

from __future__ import annotations

import fnmatch
import itertools
import re

import pytest

from evtools.event import routing_key_for
from evtools.filters import EventFilter, binding_keys

#: Event types to check the keys against: Celery's, a few custom ones with more dashes.
TYPES = [
    "task-sent", "task-received", "task-started", "task-succeeded", "task-failed",
    "task-rejected", "task-revoked", "task-retried", "task-fail", "task-failed-hard",
    "worker-online", "worker-heartbeat", "worker-offline", "failed", "app-task-failed",
    "task", "x-failed", "task-", "-failed", "tasks-failed",
]

GLOBS = [
    "task-failed", "task-*", "*", "task-fail*", "*-failed", "worker-*", "task-?ailed",
    "task-[fs]*", "t*", "*-*", "task-*-hard", "task-multi", "app-*-failed", "*fail*",
    "worker-heartbeat", "task-succeeded", "",
]


def amqp_matches(key: str, routing_key: str) -> bool:
    """RabbitMQ's topic matching: ``*`` one word, ``#`` zero or more words."""
    def match(k: list[str], r: list[str]) -> bool:
        if not k:
            return not r
        if k[0] == "#":
            return any(match(k[1:], r[i:]) for i in range(len(r) + 1))
        return bool(r) and (k[0] == "*" or k[0] == r[0]) and match(k[1:], r[1:])
    return match(key.split("."), routing_key.split("."))


def redis_matches(key: str, routing_key: str) -> bool:
    """kombu's Redis fanout: the key, ``#`` made ``*``, as a PSUBSCRIBE glob."""
    return fnmatch.fnmatchcase(routing_key, key.replace("#", "*"))


@pytest.mark.parametrize(("types", "keys"), [
    ((), ("#",)),
    (("",), ("#",)),
    (("task-failed",), ("task.failed", "task.multi")),
    (("task-*",), ("task.#",)),
    (("*",), ("#",)),
    (("task-fail*",), ("task.#",)),
    (("task-?ailed",), ("task.#",)),
    (("task-[fs]*",), ("task.#",)),
    (("t*",), ("#",)),
    (("worker-*",), ("worker.#",)),
    (("worker-heartbeat",), ("worker.heartbeat",)),
    (("*-failed",), ("#.failed", "task.multi")),
    (("task-failed", "task-*"), ("task.#",)),
    (("task-failed", "task-failed"), ("task.failed", "task.multi")),
    (("task-failed", "worker-*"), ("task.failed", "worker.#", "task.multi")),
    (("task-*", "*-failed"), ("#",)),
    (("task-multi",), ("task.multi",)),
    (("task-#",), ("task.#",)),
])
def test_binding_keys_for_globs(types: tuple[str, ...], keys: tuple[str, ...]) -> None:
    assert binding_keys(types) == keys


@pytest.mark.parametrize("globs", [
    combo for n in (1, 2) for combo in itertools.combinations(GLOBS, n)])
def test_every_wanted_event_is_bound_once(globs: tuple[str, ...]) -> None:
    keys = binding_keys(globs)
    wanted = EventFilter(types=globs)
    for type_ in TYPES:
        routing_key = routing_key_for(type_)
        on_redis = [k for k in keys if redis_matches(k, routing_key)]
        assert len(on_redis) <= 1, (type_, keys)  # Redis would deliver it twice
        if wanted.matches({"type": type_}):
            assert any(amqp_matches(k, routing_key) for k in keys), (type_, keys)
            assert on_redis, (type_, keys)
    if any(wanted.matches({"type": t}) for t in TYPES if t.startswith("task-")):
        assert any(amqp_matches(k, "task.multi") for k in keys)
        assert sum(redis_matches(k, "task.multi") for k in keys) == 1


def test_pushed_down_keys_leave_unwanted_groups_out() -> None:
    keys = binding_keys(["task-failed"])
    assert not any(amqp_matches(k, "worker.heartbeat") or amqp_matches(k, "task.succeeded")
                   for k in keys)
    assert not any(re.fullmatch(r"#|task\.#", k) for k in keys)
