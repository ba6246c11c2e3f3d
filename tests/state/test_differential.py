"""evtools' State against Celery's: the same random event sequences, every public answer compared.

A hypothesis state machine drives ``evtools.state.State`` and ``celery.events.state.State``
with the same events — task lifecycles delivered shuffled, duplicated and late, children
before parents, fields that change between events, missing fields, small LRU limits —
interleaved with maintenance and query calls, and compares every public answer after every
step.  The differences it allows are few, each named below and in docs/compatibility.md:

- ``MALFORMED``: an event Celery's State raises on (or ignores) is dropped and counted.
- ``HEAP_CAP``: Celery's time ordering keeps only the last ``4 x max_tasks_in_memory``
  events; evtools keeps every live task.  Celery is given a heap that never drops.
- ``WEAK_REFS``: Celery's indexes hold weak references and list evicted tasks until the
  cycle collector runs; Celery's answers are read after ``gc.collect()``, live tasks only.
- ``INDEX_KEYS``: ``tasks_by_type[name]`` / ``tasks_by_worker[host]`` hold every live task of
  that name / run by that worker (Celery files a task only under its first event's values).
- ``LIMIT``: ``tasks_by_time(limit=N)`` gives N tasks; Celery's gives the tasks of its
  last N events (fewer tasks when one task had several of them).
- ``WORKERLESS``: Celery's ``tasks_by_worker(host)`` raises AttributeError when a task
  seen only through ``task-sent`` is in the ordering; evtools skips such tasks.
- ``PARENT_CACHE``: Celery caches ``task.parent`` / ``task.root`` forever (stale after an
  eviction); evtools looks them up, so they are compared with Celery's task map.
- ``PICKLE``: Celery's pickle round trip loses children, parent links, seen task types and
  counters, and reorders the LRU; evtools' is lossless, so only evtools is round-tripped
  and then compared with Celery's state that was never pickled.
- ``TIMESTAMPLESS``: Celery's ``rebuild_taskheap()`` raises TypeError while a task made by
  ``get_or_create_task`` has no timestamp yet; it is only called when every task has one.
- ``UNSORTED_REBUILD``: Celery's ``rebuild_taskheap()`` sorts a copy and leaves its own list in
  task-map order (``heap = self._taskheap[:] = [...]; heap.sort()``); the test sorts it after.
- ``REPR``: Celery's ``repr(worker)`` lacks its closing ``>``; evtools' has it.
- ``CLOCK_ZERO``: events all carry a non-zero clock (Celery orders clock-0 entries by
  timestamp; a documented difference the generator leaves out).
"""

from __future__ import annotations

import gc
import os
import pickle
import time
from typing import Any

from celery.events.state import State as CeleryState
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from evtools.state import State

UUIDS = [f"t{i}" for i in range(7)]
GHOST_PARENTS = ["ghost-a", "ghost-b"]  # parents whose own events never come
HOSTS = ["w1@a", "w2@b", "w3@c"]
CLIENT = "client@x"
NAMES = ["proj.add", "proj.mul", "proj.chain", "proj.fail"]
SUBJECTS = ["sent", "received", "started", "succeeded", "failed", "retried", "revoked",
            "rejected", "progress"]
TASK_REQUIRED = ("type", "uuid", "hostname", "timestamp", "local_received", "clock")
WORKER_REQUIRED = ("type", "hostname", "timestamp", "local_received")
WORKER_FIELDS = ("hostname", "pid", "freq", "heartbeats", "clock", "active", "processed",
                 "loadavg", "sw_ident", "sw_ver", "sw_sys", "alive", "status_string", "id")
TASK_ATTRS = ("uuid", "name", "state", "received", "sent", "started", "rejected", "succeeded",
              "failed", "retried", "revoked", "args", "kwargs", "eta", "expires", "retries",
              "result", "exception", "timestamp", "runtime", "traceback", "exchange",
              "routing_key", "clock", "client", "root_id", "parent_id", "hostname", "pid",
              "type", "queue", "progress", "id", "origin", "ready")

EXAMPLES = int(os.environ.get("EVTOOLS_FUZZ_EXAMPLES", "100"))
STEPS = int(os.environ.get("EVTOOLS_FUZZ_STEPS", "40"))

task_fields = st.fixed_dictionaries({}, optional={
    "name": st.sampled_from(NAMES + [None]),
    "parent_id": st.sampled_from(UUIDS + GHOST_PARENTS + [None]),
    "root_id": st.sampled_from(UUIDS[:3] + [None]),
    "args": st.sampled_from(["()", "(1, 2)"]),
    "kwargs": st.sampled_from(["{}", "{'x': 1}"]),
    "result": st.sampled_from(["3", "'done'", None]),
    "exception": st.sampled_from(["KeyError('x')", "ValueError()"]),
    "traceback": st.sampled_from(["Traceback...\nKeyError"]),
    "retries": st.integers(0, 3),
    "runtime": st.floats(0, 10, allow_nan=False),
    "queue": st.sampled_from(["celery", "high"]),
    "eta": st.sampled_from([None, "2026-01-01T00:00:00"]),
    "progress": st.integers(0, 100),
    "pid": st.sampled_from([100, 200]),
})

worker_fields = st.fixed_dictionaries({}, optional={
    "freq": st.sampled_from([2.0, 60.0]),
    "pid": st.sampled_from([1, 2]),
    "active": st.integers(0, 4),
    "processed": st.integers(0, 100),
    "loadavg": st.sampled_from([[0.1, 0.2, 0.3], [1.0, 1.0, 1.0]]),
    "sw_ident": st.just("py-celery"),
    "sw_ver": st.sampled_from(["5.3.6", "5.7.0"]),
    "sw_sys": st.just("Linux"),
})

#: A required field left out of an event (None: a complete event), rarely.
missing_task_field = st.one_of(st.none(), st.none(), st.none(), st.none(), st.none(),
                               st.none(), st.none(), st.sampled_from(TASK_REQUIRED))
missing_worker_field = st.one_of(st.none(), st.none(), st.none(), st.none(), st.none(),
                                 st.sampled_from(WORKER_REQUIRED))


def live_celery_tasks(celery: CeleryState, tasks: Any) -> set[str]:
    """The uuids of ``tasks`` that are the very objects Celery's task map holds (WEAK_REFS)."""
    data = celery.tasks.data
    return {task.uuid for task in tasks if data.get(task.uuid) is task}


def celery_ordering(celery: CeleryState, pairs: Any) -> list[str]:
    """Celery's ``(uuid, task)`` answers, live tasks only (WEAK_REFS)."""
    data = celery.tasks.data
    return [uuid for uuid, task in pairs if data.get(uuid) is task]


class StateMachine(RuleBasedStateMachine):
    """Feeds both States the same events and calls, and compares them after every step."""

    @initialize(max_tasks=st.integers(2, 6), max_workers=st.integers(1, 3))
    def make_states(self, max_tasks: int, max_workers: int) -> None:
        self.evtools = State(max_tasks_in_memory=max_tasks, max_workers_in_memory=max_workers,
                             max_field_size=None)
        self.celery = CeleryState(max_tasks_in_memory=max_tasks,
                                  max_workers_in_memory=max_workers)
        self.celery.heap_multiplier = 10 ** 9  # HEAP_CAP
        self.clock = 0
        self.now = time.time()
        self.history: list[dict[str, Any]] = []
        #: Whether Celery may hold forgotten tasks that only the cycle collector frees.
        self.forgotten = False

    # -- events ------------------------------------------------------------------------------

    def _stamp(self, event: dict[str, Any], old: bool) -> dict[str, Any]:
        self.clock += 1
        timestamp = self.now + self.clock / 1000 - (5000 if old else 0)
        event.update(clock=self.clock, timestamp=timestamp, local_received=timestamp + 0.01,
                     utcoffset=0)
        return event

    def _deliver(self, event: dict[str, Any], missing: str | None = None) -> None:
        if missing is not None:
            event = {k: v for k, v in event.items() if k != missing}
        else:
            self.history.append(event)
        dropped_before = sum(self.evtools.dropped.values())
        held = set(self.celery.tasks.data)
        try:
            expected = self.celery.event(dict(event))
        except KeyError:
            expected = "refused"  # MALFORMED
        self.forgotten |= not held <= self.celery.tasks.data.keys()
        got = self.evtools.event(dict(event))
        if expected == "refused" or expected is None and event.get("type", "").startswith("worker"):
            assert got is None
            assert sum(self.evtools.dropped.values()) == dropped_before + 1
            return
        if expected is None:
            assert got is None
            return
        (expected_obj, expected_created), expected_subject = expected
        (got_obj, got_created), got_subject = got
        assert (got_created, got_subject) == (expected_created, expected_subject)
        assert getattr(got_obj, "uuid", None) == getattr(expected_obj, "uuid", None)
        assert got_obj.hostname == expected_obj.hostname

    @rule(subject=st.sampled_from(SUBJECTS), uuid=st.sampled_from(UUIDS),
          host=st.sampled_from(HOSTS), fields=task_fields, old=st.booleans(),
          missing=missing_task_field)
    def task_event(self, subject: str, uuid: str, host: str, fields: dict, old: bool,
                   missing: str | None) -> None:
        hostname = CLIENT if subject == "sent" else host
        event = dict(fields, type=f"task-{subject}", uuid=uuid, hostname=hostname)
        self._deliver(self._stamp(event, old), missing)

    @rule(uuid=st.sampled_from(UUIDS), host=st.sampled_from(HOSTS),
          parent=st.sampled_from(UUIDS + GHOST_PARENTS + [None]),
          name=st.sampled_from(NAMES), order=st.permutations(range(4)),
          final=st.sampled_from(["succeeded", "failed", "revoked"]))
    def lifecycle_shuffled(self, uuid: str, host: str, parent: str | None, name: str,
                           order: list[int], final: str) -> None:
        events = [
            self._stamp(dict(type="task-sent", uuid=uuid, hostname=CLIENT, name=name,
                             parent_id=parent, root_id=parent, args="()", kwargs="{}",
                             queue="celery"), False),
            self._stamp(dict(type="task-received", uuid=uuid, hostname=host, name=name,
                             parent_id=parent, root_id=parent, args="()", kwargs="{}"), False),
            self._stamp(dict(type="task-started", uuid=uuid, hostname=host, pid=100), False),
            self._stamp(dict(type=f"task-{final}", uuid=uuid, hostname=host, result="1",
                             runtime=0.5), False),
        ]
        for index in order:
            self._deliver(events[index])

    @rule(data=st.data())
    def redeliver(self, data: st.DataObject) -> None:
        """An event delivered again (a duplicate, or a late copy)."""
        if self.history:
            self._deliver(dict(data.draw(st.sampled_from(self.history))))

    @rule(subject=st.sampled_from(["online", "heartbeat", "offline"]),
          host=st.sampled_from(HOSTS), fields=worker_fields, old=st.booleans(),
          missing=missing_worker_field)
    def worker_event(self, subject: str, host: str, fields: dict, old: bool,
                     missing: str | None) -> None:
        event = dict(fields, type=f"worker-{subject}", hostname=host)
        self._deliver(self._stamp(event, old), missing)

    @rule(group=st.sampled_from(["custom-thing", "task", "worker"]))
    def odd_type(self, group: str) -> None:
        self._deliver(self._stamp({"type": group, "hostname": HOSTS[0]}, False))

    # -- maintenance and queries -------------------------------------------------------------

    @rule(ready=st.booleans())
    def clear(self, ready: bool) -> None:
        self.forgotten = True
        self.evtools.clear(ready)
        self.celery.clear(ready)

    @rule(ready=st.booleans())
    def clear_tasks(self, ready: bool) -> None:
        self.forgotten = True
        self.evtools.clear_tasks(ready)
        self.celery.clear_tasks(ready)

    @precondition(lambda self: all(t.timestamp is not None for t in self.celery.tasks.data.values()))
    @rule()
    def rebuild_taskheap(self) -> None:
        """TIMESTAMPLESS: Celery's raises TypeError on a task no event has dated yet."""
        self.evtools.rebuild_taskheap()
        self.celery.rebuild_taskheap()
        self.celery._taskheap.sort()  # UNSORTED_REBUILD

    @rule()
    def pickle_round_trip(self) -> None:
        """PICKLE: evtools' State comes back the same; Celery's is left as it was."""
        self.evtools = pickle.loads(pickle.dumps(self.evtools))

    @rule(clear_after=st.booleans())
    def freeze_while(self, clear_after: bool) -> None:
        self.forgotten = True
        def count(state: Any) -> tuple[int, int, int]:
            return len(state.tasks), len(state.workers), state.event_count
        got = self.evtools.freeze_while(count, self.evtools, clear_after=clear_after)
        expected = self.celery.freeze_while(count, self.celery, clear_after=clear_after)
        assert got == expected

    @rule(uuid=st.sampled_from(UUIDS))
    def get_or_create_task(self, uuid: str) -> None:
        self.forgotten = True  # creating one may evict another
        got_task, got_created = self.evtools.get_or_create_task(uuid)
        expected_task, expected_created = self.celery.get_or_create_task(uuid)
        assert (got_task.uuid, got_created) == (expected_task.uuid, expected_created)

    @rule(host=st.sampled_from(HOSTS), fields=worker_fields)
    def get_or_create_worker(self, host: str, fields: dict) -> None:
        got_worker, got_created = self.evtools.get_or_create_worker(host, **fields)
        expected_worker, expected_created = self.celery.get_or_create_worker(host, **fields)
        assert (got_worker.hostname, got_created) == (expected_worker.hostname, expected_created)

    @rule(uuid=st.sampled_from(UUIDS))
    def read_task_by_key(self, uuid: str) -> None:
        """``state.tasks[uuid]`` makes a task the most recently used, in both."""
        got = self.evtools.tasks.get(uuid)
        expected = self.celery.tasks.get(uuid)
        assert getattr(got, "uuid", None) == getattr(expected, "uuid", None)
        if expected is not None:
            self.evtools.tasks[uuid]  # noqa: B018 - touching it is the point
            self.celery.tasks[uuid]  # noqa: B018

    # -- the comparison ----------------------------------------------------------------------

    @invariant()
    def same_answers(self) -> None:
        if not hasattr(self, "evtools"):
            return
        ev, ce = self.evtools, self.celery
        if self.forgotten:  # WEAK_REFS
            gc.collect()
            self.forgotten = False
        assert (ev.event_count, ev.task_count) == (ce.event_count, ce.task_count)
        assert repr(ev) == repr(ce)
        assert list(ev.tasks) == list(ce.tasks)
        for limit in (None, 1, 3):
            assert [u for u, _ in ev.itertasks(limit)] == [u for u, _ in ce.itertasks(limit)]
        assert list(ev.workers) == list(ce.workers)
        for hostname, worker in ce.workers.data.items():
            self._compare_worker(ev.workers.data[hostname], worker)
        for uuid, task in ce.tasks.data.items():
            self._compare_task(ev.tasks.data[uuid], task)
        for reverse in (True, False):
            for limit in (None, 2):
                assert [u for u, _ in ev.tasks_by_time(limit=limit, reverse=reverse)] == \
                    celery_ordering(ce, ce.tasks_by_time(reverse=reverse))[:limit]  # LIMIT
                for name in NAMES:
                    assert [u for u, _ in ev.tasks_by_type(name, limit=limit, reverse=reverse)] \
                        == celery_ordering(ce, ce.tasks_by_type(name, limit=limit,
                                                                  reverse=reverse))
                for host in HOSTS:
                    got = [u for u, _ in ev.tasks_by_worker(host, limit=limit, reverse=reverse)]
                    try:
                        expected = celery_ordering(ce, ce.tasks_by_worker(
                            host, limit=limit, reverse=reverse))
                    except AttributeError:  # WORKERLESS
                        expected = [u for u, t in ce.tasks_by_time(reverse=reverse)
                                    if t.worker is not None and t.worker.hostname == host
                                    and ce.tasks.data.get(u) is t][:limit]
                    assert got == expected
        live = list(ce.tasks.data.values())
        assert {name: {t.uuid for t in tasks} for name, tasks in ev.tasks_by_type.items()} == \
            _group(live, lambda t: t.name)  # INDEX_KEYS
        assert {host: {t.uuid for t in tasks} for host, tasks in ev.tasks_by_worker.items()} == \
            _group(live, lambda t: t.worker.hostname if t.worker is not None else None)
        assert ev.task_types() == ce.task_types()
        assert sorted(w.hostname for w in ev.alive_workers()) == \
            sorted(w.hostname for w in ce.alive_workers())

    def _compare_task(self, got: Any, expected: Any) -> None:
        for attr in TASK_ATTRS:
            assert getattr(got, attr, None) == getattr(expected, attr, None), attr
        assert (got.worker is None) == (expected.worker is None)
        if got.worker is not None:
            assert got.worker.hostname == expected.worker.hostname
        assert got.info() == expected.info()
        assert got.info(fields=("name", "state"), extra=("progress",)) == \
            expected.info(fields=("name", "state"), extra=("progress",))
        assert repr(got) == repr(expected)
        assert {t.uuid for t in got.children} == live_celery_tasks(self.celery, expected.children)
        tasks = self.celery.tasks.data  # PARENT_CACHE
        for relation, key in (("parent", "parent_id"), ("root", "root_id")):
            related = getattr(got, relation)
            expected_related = tasks.get(getattr(expected, key)) if getattr(expected, key) else None
            assert getattr(related, "uuid", None) == getattr(expected_related, "uuid", None)
        as_dict = got.as_dict()
        assert set(as_dict) == set(expected._fields)
        assert as_dict["parent"] == expected.parent_id and as_dict["root"] == expected.root_id
        assert set(as_dict["children"]) == {t.uuid for t in got.children}

    def _compare_worker(self, got: Any, expected: Any) -> None:
        for attr in WORKER_FIELDS:
            assert getattr(got, attr) == getattr(expected, attr), attr
        if expected.heartbeats:
            assert got.heartbeat_expires == expected.heartbeat_expires
        assert repr(got) == repr(expected) + ">"  # REPR


def _group(tasks: list[Any], key: Any) -> dict[Any, set[str]]:
    grouped: dict[Any, set[str]] = {}
    for task in tasks:
        value = key(task)
        if type(value) is str:
            grouped.setdefault(value, set()).add(task.uuid)
    return grouped


StateMachine.TestCase.settings = settings(
    max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None,
    derandomize="EVTOOLS_FUZZ_EXAMPLES" not in os.environ,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TestStateAnswersAsCelerysDoes = StateMachine.TestCase
