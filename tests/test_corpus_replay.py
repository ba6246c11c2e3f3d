"""Replaying real Celery 5.7 messages gives the same state as Celery's own State."""

import gc
import random

import pytest

from tests.celery_compare import celery_pair, corpus_messages, evtools_pair, feed, summarise

RECORDS = corpus_messages()


def replay(records, max_tasks=None):
    celery_receiver, celery_state = celery_pair()
    our_receiver, our_state = evtools_pair()
    if max_tasks is not None:
        celery_state = type(celery_state)(max_tasks_in_memory=max_tasks)
        our_state = type(our_state)(max_tasks_in_memory=max_tasks)
    feed(celery_receiver, celery_state, records)
    feed(our_receiver, our_state, records)
    # Celery's evicted tasks sit in reference cycles and stay listed by its weak-reference
    # indexes until the cycle collector runs: collect first, so only live tasks compare.
    gc.collect()
    return summarise(celery_state), summarise(our_state), our_state


def test_corpus_covers_every_event_type():
    types = set()
    for record in RECORDS:
        body = record["body"]
        for event in body if isinstance(body, list) else [body]:
            types.add(event["type"])
    assert types == {"task-sent", "task-received", "task-started", "task-succeeded",
                     "task-failed", "task-retried", "task-revoked", "task-rejected",
                     "worker-online", "worker-heartbeat", "worker-offline"}


def test_replay_in_arrival_order_gives_celerys_state_exactly():
    theirs, ours, _ = replay(RECORDS)
    assert len(ours["tasks"]) == 95 and len(ours["workers"]) == 3
    for key in theirs:
        assert ours[key] == theirs[key], key


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_replay_out_of_order_gives_celerys_tasks_workers_and_ordering(seed):
    records = list(RECORDS)
    random.Random(seed).shuffle(records)
    theirs, ours, state = replay(records)
    for key in ("tasks", "workers", "event_count", "task_count", "task_types", "by_time"):
        assert ours[key] == theirs[key], key
    # A task-sent seen before any other event gets clock 0; Celery then orders it by
    # timestamp in a way that depends on insertion history, evtools files it first.
    clock_zero = {uuid for uuid, task in state.tasks.items() if task._oldest[0] == 0}
    assert len(clock_zero) <= 1
    assert [u for u in ours["by_time_forward"] if u not in clock_zero] == \
        [u for u in theirs["by_time_forward"] if u not in clock_zero]
    # Celery files a task by type only if its name came with its first event; evtools
    # files it as soon as the name is known, so it finds every task Celery finds, and more.
    for name, uuids in theirs["by_type"].items():
        assert set(uuids) <= set(ours["by_type"][name])
        expected = sorted(u for u, t in ours["tasks"].items() if t["name"] == name)
        assert ours["by_type"][name] == expected


def test_replay_with_a_small_task_limit_keeps_the_same_recent_tasks():
    theirs, ours, _ = replay(RECORDS, max_tasks=20)
    for key in ("tasks", "workers", "event_count", "task_count", "by_time"):
        assert ours[key] == theirs[key], key
    assert len(ours["tasks"]) == 20
