"""The State: Celery's behaviour, with every internal map bounded."""

import logging
import pickle
import time

import pytest

from evtools import states
from evtools.state import HEARTBEAT_EXPIRE_WINDOW, State, Task, Worker, heartbeat_expires

NOW = time.time()


def task_event(subject, uuid, clock, hostname="w1@h", **fields):
    """A task event as the receiver hands it to the state."""
    timestamp = fields.pop("timestamp", NOW + clock / 100)
    return dict(type=f"task-{subject}", uuid=uuid, hostname=hostname, clock=clock,
                timestamp=timestamp, local_received=timestamp, utcoffset=0, pid=1, **fields)


def worker_event(subject, hostname="w1@h", clock=1, timestamp=None, **fields):
    timestamp = NOW if timestamp is None else timestamp
    return dict(type=f"worker-{subject}", hostname=hostname, clock=clock, timestamp=timestamp,
                local_received=timestamp, utcoffset=0, pid=42, freq=2.0, **fields)


def run_lifecycle(state, uuid="t1", name="proj.add", start=1, **received_fields):
    state.event(task_event("sent", uuid, start, hostname="client@h", name=name, args="()",
                           kwargs="{}"))
    state.event(task_event("received", uuid, start + 1, name=name, args="()", kwargs="{}",
                           **received_fields))
    state.event(task_event("started", uuid, start + 2))
    state.event(task_event("succeeded", uuid, start + 3, result="3", runtime=0.1))


def test_task_lifecycle_ends_in_success_with_every_field():
    state = State()
    run_lifecycle(state)
    task = state.tasks["t1"]
    assert task.state == states.SUCCESS and task.ready
    assert (task.name, task.result, task.runtime, task.args) == ("proj.add", "3", 0.1, "()")
    assert task.client == "client@h"
    assert task.worker.hostname == "w1@h"
    assert task.sent and task.received and task.started and task.succeeded
    assert state.event_count == 4 and state.task_count == 1
    assert state.task_types() == ["proj.add"]
    assert repr(state) == "<State: events=4 tasks=1>"


def test_event_returns_the_object_whether_created_and_the_subject():
    state = State()
    (task, created), subject = state.event(task_event("received", "t1", 1, name="a"))
    assert (task.uuid, created, subject) == ("t1", True, "received")
    (same, created), _ = state.event(task_event("started", "t1", 2))
    assert same is task and created is False
    (worker, created), subject = state.event(worker_event("online", hostname="w9@h"))
    assert (worker.hostname, created, subject) == ("w9@h", True, "online")


def test_out_of_order_events_merge_without_moving_the_state_back():
    state = State()
    state.event(task_event("succeeded", "t1", 5, result="ok"))
    state.event(task_event("started", "t1", 4))
    state.event(task_event("received", "t1", 3, name="proj.late", args="(1,)", kwargs="{}",
                           retries=0, root_id="t1", parent_id=None))
    task = state.tasks["t1"]
    assert task.state == states.SUCCESS
    assert (task.name, task.args, task.root_id) == ("proj.late", "(1,)", "t1")
    assert task.started and task.received


def test_a_late_received_event_brings_only_its_merge_fields():
    task = Task("t1")
    task.event("succeeded", 10.0, 10.0, {"result": "1", "clock": 9})
    task.event("received", 8.0, 8.0, {"name": "a", "clock": 5, "hostname": "w2", "args": "()"})
    assert task.clock == 9 and task.hostname is None
    assert (task.name, task.args, task.state, task.timestamp) == ("a", "()", states.SUCCESS, 10.0)


def test_retry_always_applies_and_a_custom_state_wins_over_started():
    task = Task("t1")
    task.event("started", 1.0, 1.0, {})
    task.event("retried", 2.0, 2.0, {"exception": "boom"})
    assert task.state == states.RETRY and task.exception == "boom"
    task.event("started", 3.0, 3.0, {})
    assert task.state == states.STARTED
    task.event("progress", 4.0, 4.0, {"done": 50})
    assert task.state == "PROGRESS" and task.done == 50


def test_event_fields_cannot_overwrite_methods_or_internals():
    state = State()
    state.event(task_event("received", "t1", 1, name="a", children=["x"], info="no",
                           cluster_state=None, state="SUCCESS", _newest=None))
    task = state.tasks["t1"]
    assert callable(task.info) and task.state == states.RECEIVED
    assert list(task.children) == [] and task.cluster_state is state


def test_worker_heartbeats_make_it_alive_until_the_window_expires():
    state = State()
    state.event(worker_event("online", timestamp=time.time()))
    worker = state.workers["w1@h"]
    assert worker.alive and worker.status_string == "ONLINE"
    assert list(state.alive_workers()) == [worker]
    assert worker.heartbeat_expires == pytest.approx(worker.heartbeats[-1] + 2.0 * 2)
    old = Worker("old@h", freq=1)
    old.event("heartbeat", time.time() - 10, time.time() - 10, {})
    assert not old.alive and old.status_string == "OFFLINE"


def test_worker_keeps_at_most_four_heartbeats_in_order():
    worker = Worker("w")
    for ts in (5.0, 1.0, 3.0, 2.0, 4.0, 6.0):
        worker.event("heartbeat", ts, ts, {})
    assert worker.heartbeats == sorted(worker.heartbeats) and len(worker.heartbeats) == 4
    assert worker.heartbeats[-1] == 6.0


def test_worker_offline_clears_heartbeats_and_calls_on_node_leave():
    joined, left = [], []
    state = State(on_node_join=joined.append, on_node_leave=left.append)
    state.event(worker_event("online"))
    state.event(worker_event("heartbeat", clock=2))
    state.event(worker_event("offline", clock=3))
    assert [w.hostname for w in joined] == ["w1@h"]
    assert [w.hostname for w in left] == ["w1@h"] and not left[0].heartbeats
    assert "w1@h" not in state.workers


def test_offline_worker_stays_listed_when_nobody_listens_as_in_celery():
    state = State()
    state.event(worker_event("online"))
    state.event(worker_event("offline", clock=3))
    assert state.workers["w1@h"].heartbeats == [] and not state.workers["w1@h"].alive


def test_offline_of_an_unknown_worker_is_not_stored():
    state = State()
    (worker, created), _ = state.event(worker_event("offline", hostname="ghost@h"))
    assert worker.hostname == "ghost@h" and created is False
    assert "ghost@h" not in state.workers


def test_drift_warning_is_logged_once_per_worker(caplog):
    state = State()
    with caplog.at_level(logging.WARNING, logger="evtools.state"):
        for clock in range(1, 5):
            event = worker_event("heartbeat", clock=clock, timestamp=NOW - 100)
            event["local_received"] = NOW
            state.event(event)
    drift = [r for r in caplog.records if "drift" in r.getMessage()]
    assert len(drift) == 1 and "w1@h" in drift[0].getMessage()


def test_parent_children_and_root_are_linked_in_either_order():
    state = State()
    state.event(task_event("received", "child", 2, name="c", parent_id="root", root_id="root"))
    assert state.tasks["child"].parent is None
    state.event(task_event("received", "root", 1, name="r", root_id="root"))
    root = state.tasks["root"]
    assert [t.uuid for t in root.children] == ["child"]
    assert state.tasks["child"].parent is root and state.tasks["child"].root is root
    state.event(task_event("received", "child2", 3, name="c", parent_id="root", root_id="root"))
    assert sorted(t.uuid for t in root.children) == ["child", "child2"]
    assert state.tasks["child2"] in root.children


def test_tasks_by_time_is_newest_event_first_and_forward_is_oldest_first():
    state = State()
    run_lifecycle(state, "a", start=1)
    run_lifecycle(state, "b", start=10)
    state.event(task_event("failed", "a", 20, exception="x"))
    assert [u for u, _ in state.tasks_by_time()] == ["a", "b"]
    assert [u for u, _ in state.tasks_by_time(reverse=False)] == ["a", "b"]
    assert [u for u, _ in state.tasks_by_time(limit=1)] == ["a"]
    assert [u for u, _ in state.tasks_by_timestamp()] == ["a", "b"]


def test_tasks_by_type_and_by_worker_are_indexes_and_callables():
    state = State()
    run_lifecycle(state, "a", name="x.add")
    run_lifecycle(state, "b", name="x.mul", start=10)
    run_lifecycle(state, "c", name="x.add", start=20)
    assert {t.uuid for t in state.tasks_by_type["x.add"]} == {"a", "c"}
    assert len(state.tasks_by_type["x.mul"]) == 1
    assert [u for u, _ in state.tasks_by_type("x.add")] == ["c", "a"]
    assert [u for u, _ in state.tasks_by_type("x.add", reverse=False)] == ["a", "c"]
    assert {t.uuid for t in state.tasks_by_worker["w1@h"]} == {"a", "b", "c"}
    assert [u for u, _ in state.tasks_by_worker("w1@h", limit=2)] == ["c", "b"]
    assert len(state.tasks_by_type["never.seen"]) == 0


def test_task_limit_evicts_least_recently_updated_and_every_index_forgets_them():
    state = State(max_tasks_in_memory=100)
    for n in range(1000):
        run_lifecycle(state, f"t{n}", name=f"name{n % 7}", start=n * 10)
        state.event(task_event("received", f"orphan{n}", n * 10 + 5, name="o",
                               parent_id=f"missing{n}"))
    assert len(state.tasks) == 100
    assert sum(len(s.uuids) for s in state.tasks_by_type.values()) == 100
    assert sum(len(s.uuids) for s in state.tasks_by_worker.values()) == 100
    assert len(state._pending_children) <= 100
    assert sum(len(v) for v in state._pending_children.values()) <= 100
    assert len(list(state.tasks_by_time())) == 100
    assert len(state._timeline.newest) <= 2 * 100 + 1024
    assert len(state.task_types()) <= 100


def test_a_child_waiting_for_its_parent_does_not_leak_celery_4832():
    state = State(max_tasks_in_memory=50)
    for n in range(5000):
        state.event(task_event("received", f"c{n}", n + 1, name="c", parent_id=f"p{n}"))
    assert len(state._pending_children) <= 50
    assert sum(len(v) for v in state._pending_children.data.values()) <= 50


def test_worker_limit_is_bounded():
    state = State(max_workers_in_memory=3)
    for n in range(10):
        state.event(worker_event("online", hostname=f"w{n}@h"))
    assert list(state.workers) == ["w7@h", "w8@h", "w9@h"]


def test_reading_a_task_by_key_makes_it_recent_like_celerys_lru():
    state = State(max_tasks_in_memory=2)
    run_lifecycle(state, "a")
    run_lifecycle(state, "b", start=10)
    state.tasks["a"]  # noqa: B018 - touching it is the point
    run_lifecycle(state, "c", start=20)
    assert set(state.tasks) == {"a", "c"}


def test_clear_tasks_keeps_unfinished_ones_and_clear_resets_counters():
    state = State()
    run_lifecycle(state, "done")
    state.event(task_event("received", "busy", 10, name="b"))
    state.clear_tasks()
    assert list(state.tasks) == ["busy"]
    # As in Celery, the time ordering starts again: a kept task returns with its next event.
    assert [u for u, _ in state.tasks_by_time()] == []
    state.event(task_event("started", "busy", 11))
    assert [u for u, _ in state.tasks_by_time()] == ["busy"]
    assert {t.uuid for t in state.tasks_by_type["b"]} == {"busy"}
    state.clear_tasks(ready=False)
    assert len(state.tasks) == 0
    state.event(worker_event("online"))
    state.clear()
    assert (len(state.workers), state.event_count, state.task_count) == (0, 0, 0)


def test_freeze_while_returns_and_can_clear_after():
    state = State()
    run_lifecycle(state)
    assert state.freeze_while(lambda: len(state.tasks)) == 1
    assert state.freeze_while(lambda x: x * 2, 21) == 42
    state.freeze_while(lambda: None, clear_after=True)
    assert len(state.tasks) == 0 and state.event_count == 0


def test_get_or_create_worker_and_task():
    state = State()
    worker, created = state.get_or_create_worker("w@h", pid=3)
    assert created and worker.pid == 3
    again, created = state.get_or_create_worker("w@h", pid=4)
    assert again is worker and not created and worker.pid == 4
    task, created = state.get_or_create_task("u")
    assert created and task.state == states.PENDING and task.cluster_state is state
    assert state.get_or_create_task("u") == (task, False)


def test_info_and_as_dict():
    state = State()
    run_lifecycle(state)
    task = state.tasks["t1"]
    assert task.info() == {"args": "()", "kwargs": "{}", "result": "3", "runtime": 0.1}
    assert task.info(fields=["name"], extra=["state"]) == {"name": "proj.add", "state": "SUCCESS"}
    data = task.as_dict()
    assert set(data) == set(Task._fields)
    assert data["children"] == [] and data["uuid"] == "t1" and data["state"] == "SUCCESS"
    assert repr(task) == "<Task: proj.add(t1) SUCCESS clock:4>"
    # as in Celery, a worker never seen in a worker event has no pid yet
    assert task.id == "t1" and task.origin == "w1@h.None"


def test_state_pickles_with_tasks_workers_children_and_indexes():
    state = State(max_tasks_in_memory=500)
    state.event(worker_event("online"))
    run_lifecycle(state, "root")
    state.event(task_event("received", "kid", 20, name="k", parent_id="root", root_id="root"))
    clone = pickle.loads(pickle.dumps(state))
    assert set(clone.tasks) == {"root", "kid"} and clone.max_tasks_in_memory == 500
    root = clone.tasks["root"]
    assert root.state == states.SUCCESS and root.cluster_state is clone
    assert [t.uuid for t in root.children] == ["kid"]
    assert clone.tasks["kid"].parent is root
    assert {t.uuid for t in clone.tasks_by_type["k"]} == {"kid"}
    assert [u for u, _ in clone.tasks_by_time()] == [u for u, _ in state.tasks_by_time()]
    assert clone.workers["w1@h"].pid == 42


def test_task_and_worker_pickle_on_their_own():
    task = Task("u", name="n", state="STARTED", args="()")
    clone = pickle.loads(pickle.dumps(task))
    assert (clone.uuid, clone.name, clone.state, clone.args) == ("u", "n", "STARTED", "()")
    worker = Worker("w@h", pid=1, freq=5, heartbeats=[1.0])
    assert pickle.loads(pickle.dumps(worker)).heartbeats == [1.0]
    assert Task("u") == Task("u") and hash(Task("u")) == hash("u")
    assert Worker("a") == Worker("a") and Worker("a") != Worker("b")


def test_heartbeat_expires_window():
    assert HEARTBEAT_EXPIRE_WINDOW == 200
    assert heartbeat_expires(100.0, freq=2) == 104.0
    from decimal import Decimal
    assert heartbeat_expires(Decimal("100"), freq=Decimal("2")) == 104.0


def test_custom_group_handlers_and_callback():
    seen = []
    state = State(callback=lambda s, e: seen.append(e["type"]))
    state.handlers["custom"] = lambda subject, event: ("handled", subject)
    assert state.event({"type": "custom-thing"}) == (("handled", "thing"), "thing")
    assert state.event({"type": "other-thing"}) is None
    assert seen == ["custom-thing", "other-thing"]


@pytest.mark.parametrize("junk", [
    {}, {"type": None}, {"type": 5}, {"type": "task-sent"}, {"type": "task-sent", "uuid": 7},
    {"type": "worker-online"}, {"type": "worker-online", "hostname": ["x"]},
    {"type": "task-received", "uuid": "u", "clock": "9", "timestamp": "now"},
    {"type": "task-received", "uuid": "u", "timestamp": float("nan"), "local_received": "x"},
    [], "string", 42,
])
def test_junk_events_never_raise_and_valid_ones_still_apply(junk):
    state = State()
    state.event(junk)
    run_lifecycle(state, "after")
    assert state.tasks["after"].state == states.SUCCESS


def test_junk_drops_are_counted_by_kind():
    state = State()
    state.event({"type": "task-sent"})
    state.event({"type": "task-sent"})
    state.event({"no": "type"})
    assert state.dropped == {"task-without-uuid": 2, "no-type": 1}


def test_deprecated_task_event_and_worker_event():
    state = State()
    task = state.task_event("received", {"uuid": "u", "hostname": "w", "clock": 1,
                                         "timestamp": NOW, "local_received": NOW, "name": "n"})
    assert task[0].name == "n"
    worker = state.worker_event("online", {"hostname": "w2", "timestamp": NOW,
                                           "local_received": NOW})
    assert worker[0].hostname == "w2"


def test_giant_fields_are_truncated_on_ingest_and_marked():
    state = State(max_field_size=100)
    huge = "x" * 1_000_000
    state.event(task_event("received", "big", 1, name="n", args=huge, kwargs="{}"))
    state.event(task_event("failed", "big", 2, exception="E()", traceback="t" * 5000))
    task = state.tasks["big"]
    assert task.args.startswith("x" * 100) and len(task.args) < 200
    assert task.args.endswith("[999900 more characters truncated by evtools]")
    assert task.traceback.endswith("[4900 more characters truncated by evtools]")
    assert task.kwargs == "{}" and task.exception == "E()" and state.truncated == 2
    whole = State(max_field_size=None)
    whole.event(task_event("received", "big", 1, name="n", args=huge))
    assert whole.tasks["big"].args is huge


# -- issue 11: regressions -------------------------------------------------------------------

def family(state):
    """A parent, its child and an unrelated task: what made clear() and pickle crash."""
    state.event(task_event("received", "P", 1, name="p"))
    state.event(task_event("received", "C", 2, name="c", parent_id="P"))
    state.event(task_event("received", "X", 3, name="x"))
    return state


@pytest.mark.parametrize(("call", "kept"), [
    (lambda s: s.clear(), "CPX"), (lambda s: s.clear(ready=False), ""),
    (lambda s: s.clear_tasks(), "CPX"), (lambda s: s.clear_tasks(ready=False), ""),
    (lambda s: s.rebuild_taskheap(), "CPX"), (lambda s: pickle.loads(pickle.dumps(s)), "CPX"),
    (lambda s: s.freeze_while(lambda: None, clear_after=True), "CPX"),
])
def test_maintenance_calls_work_with_a_parent_and_a_child(call, kept):
    state = family(State())
    result = call(state)
    state = result if isinstance(result, State) else state
    assert "".join(state.tasks) == kept
    if kept:
        assert [t.uuid for t in state.tasks["P"].children] == ["C"]
        assert state.tasks["C"].parent is state.tasks["P"]


def test_clear_with_a_family_resets_the_counters_and_keeps_the_lru_order():
    state = family(State())
    state.event(task_event("succeeded", "X", 4))
    order = list(state.tasks)
    state.clear()
    assert (state.event_count, state.task_count, len(state.workers)) == (0, 0, 0)
    assert list(state.tasks) == [u for u in order if u != "X"]
    assert [t.uuid for t in state.tasks["P"].children] == ["C"]


def test_a_pickled_state_keeps_its_field_limit_order_counters_and_orphans():
    state = State(max_field_size=None, max_tasks_in_memory=5)
    family(state)
    state.event(task_event("received", "O", 4, name="o", parent_id="not-yet"))
    copy = pickle.loads(pickle.dumps(state))
    assert copy.max_field_size is None
    assert pickle.loads(pickle.dumps(State(max_field_size=7))).max_field_size == 7
    assert list(copy.tasks) == list(state.tasks)
    assert (copy.event_count, copy.task_count) == (state.event_count, state.task_count)
    assert [u for u, _ in copy.tasks_by_time(reverse=False)] == \
        [u for u, _ in state.tasks_by_time(reverse=False)]
    assert copy.task_types() == state.task_types()
    copy.event(task_event("received", "not-yet", 9, name="late parent"))
    assert [t.uuid for t in copy.tasks["not-yet"].children] == ["O"]


def test_a_parent_is_renewed_by_every_event_of_its_children_as_in_celery():
    state = State(max_tasks_in_memory=3)
    state.event(task_event("received", "P", 1))
    state.event(task_event("received", "C", 2, parent_id="P"))
    state.event(task_event("received", "X", 3))
    state.event(task_event("started", "C", 4, parent_id="P"))  # P becomes the newest again
    assert list(state.tasks) == ["C", "X", "P"]
    state.event(task_event("received", "Y", 5))
    assert list(state.tasks) == ["X", "P", "Y"]


def test_a_parent_id_that_comes_and_goes_leaves_nothing_waiting():
    state = State(max_tasks_in_memory=10)
    for n in range(5000):
        state.event(task_event("received", f"t{n}", 2 * n + 1, parent_id="p1"))
        state.event(task_event("started", f"t{n}", 2 * n + 2, parent_id=None))
    assert sum(len(waiting) for waiting in state._pending_children.data.values()) <= 10


def test_a_name_that_changes_or_stops_being_a_string_leaves_no_stale_index_entry():
    state = State()
    state.event(task_event("received", "t", 1, name="first"))
    state.event(task_event("started", "t", 2, name="second"))
    assert dict(state.tasks_by_type).keys() == {"second"}
    state.event(task_event("succeeded", "t", 3, name=5))
    assert dict(state.tasks_by_type) == {}
    assert state.task_types() == ["first", "second"]


@pytest.mark.parametrize("missing", ["clock", "timestamp", "local_received", "hostname", "uuid"])
def test_a_task_event_celery_refuses_is_dropped_and_counted(missing):
    state = State()
    event = task_event("received", "t", 1, name="n")
    del event[missing]
    assert state.event(event) is None
    assert state.dropped == {f"task-without-{missing}": 1}
    assert len(state.tasks) == 0 and state.event_count == 1


@pytest.mark.parametrize("missing", ["timestamp", "local_received", "hostname"])
def test_a_worker_event_celery_ignores_is_dropped_and_counted(missing):
    state = State()
    event = worker_event("online")
    del event[missing]
    assert state.event(event) is None
    assert state.dropped == {f"worker-without-{missing}": 1}
    assert len(state.workers) == 0


def test_precedence_is_a_list_as_in_celery():
    from celery import states as celery_states
    assert type(states.PRECEDENCE) is type(celery_states.PRECEDENCE) is list
    assert states.PRECEDENCE == celery_states.PRECEDENCE


def test_user_code_may_assign_a_plain_dict_of_tasks():
    state = State(max_tasks_in_memory=3)
    run_lifecycle(state, "old")
    parent = Task("P", name="p")
    state.tasks = {"P": parent}
    assert list(state.tasks) == ["P"] and state.tasks["P"].cluster_state is state
    state.event(task_event("received", "C", 50, name="c", parent_id="P"))
    assert [t.uuid for t in state.tasks["P"].children] == ["C"]
    assert {t.uuid for t in state.tasks_by_type["c"]} == {"C"}
    for n in range(5):
        run_lifecycle(state, f"new{n}", start=100 + 10 * n)
    assert len(state.tasks) == 3
    assert "old" not in {t.uuid for t in state.tasks_by_type["proj.add"]}


def test_a_clock_zero_entry_sorts_first_oldest_first():
    """CLOCK_ZERO in docs/compatibility.md: the generator of the differential test leaves it out."""
    state = State()
    state.event(task_event("received", "a", 5))
    state.event(task_event("sent", "b", 0, hostname="client@h", timestamp=NOW + 100))
    assert [u for u, _ in state.tasks_by_time(reverse=False)] == ["b", "a"]
