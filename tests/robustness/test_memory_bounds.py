"""Under a flood every structure of the State stays bounded by its limits (sizes, not timings)."""

from bench.stream import task_events
from evtools.state import State
from evtools.timeline import COMPACT_SLACK


def structure_sizes(state):
    timeline = state._timeline
    return {
        "tasks": len(state.tasks),
        "workers": len(state.workers),
        "timeline": max(len(timeline.newest), len(timeline.oldest)),
        "by_type": sum(len(s.uuids) for s in state.tasks_by_type.values()),
        "by_worker": sum(len(s.uuids) for s in state.tasks_by_worker.values()),
        "pending_children": sum(len(v) for v in state._pending_children.data.values()),
        "pending_parents": len(state._pending_children),
        "task_types": len(state.task_types()),
        "shared_strings": len(state._strings),
    }


def test_a_flood_of_tasks_children_and_names_stays_within_the_limits():
    limit = 2_000
    state = State(max_tasks_in_memory=limit, max_workers_in_memory=50)
    for n, event in enumerate(task_events(60_000, seed=3)):
        if event["type"] == "task-received" and n % 3 == 0:
            event = dict(event, parent_id=f"never-seen-{n}", name=f"flood.name.{n}")
        if event["type"] == "worker-heartbeat" and n % 2:
            event = dict(event, hostname=f"{event['hostname']}-{n}")
        state.event(event)
    sizes = structure_sizes(state)
    assert sizes["tasks"] == limit and sizes["workers"] <= 50
    assert sizes["timeline"] <= 2 * limit + COMPACT_SLACK  # at most one stale entry per task
    assert sizes["by_type"] <= limit and sizes["by_worker"] <= limit
    assert sizes["pending_children"] <= limit and sizes["pending_parents"] <= limit
    assert sizes["task_types"] <= limit and sizes["shared_strings"] <= 4096
    assert state.event_count > 240_000
