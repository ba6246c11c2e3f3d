"""Memory ceiling under a flood: 1,000,000 events over 200,000 tasks with the default limits.

    python -m bench.ceiling evtools|celery

Feeds the stream as it is generated (no list of events in memory), then prints one JSON line:
the peak RSS, the RSS at the end, and the baseline before the first event, in MiB.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import sys

from .stream import task_events

TASKS = 200_000


def rss_mib() -> float:
    """The resident set size of this process now."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main(impl: str, tasks: int = TASKS) -> dict[str, float]:
    """Run the flood through ``impl``'s State with its default limits."""
    if impl == "celery":
        from celery.events.state import State
    else:
        from evtools.state import State
    state = State()
    gc.collect()
    baseline = rss_mib()
    events = 0
    for event in task_events(tasks, seed=11):
        if event["type"] == "task-received" and events % 5 == 0:
            event["parent_id"] = f"gone-{events}"  # children waiting for parents never seen
        state.event(event)
        events += 1
        if event["type"] == "task-started":  # a progress update per task: 5 events a task
            state.event(dict(event, type="task-progress", clock=event["clock"], done=50))
            events += 1
    gc.collect()
    return {"impl": impl, "events": events, "tasks_kept": len(state.tasks),
            "baseline_mib": round(baseline, 1), "end_mib": round(rss_mib(), 1),
            "peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "peak_growth_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                                     - baseline, 1)}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1] if len(sys.argv) > 1 else "evtools")))
