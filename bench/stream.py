"""A deterministic event stream, as a receiver hands events to a State (same for both sides)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

__all__ = ("task_events", "prepared_stream", "WORKERS")

WORKERS = [f"celery@worker{n}.bench" for n in range(1, 9)]
NAMES = ["shop.orders.create", "shop.email.send", "payments.charge", "analytics.track",
         "images.thumbnail", "reports.build"]
START = 1_795_600_000.0


def task_events(tasks: int, seed: int = 1) -> Iterator[dict[str, Any]]:
    """Yield events for ``tasks`` tasks (sent, received, started, succeeded/failed) plus heartbeats.

    Events of a few tasks interleave, as they do from a real cluster; the clock and
    local_received fields are set as a receiver sets them.
    """
    rng = random.Random(seed)
    clock = 0
    now = START
    in_flight: list[list[dict[str, Any]]] = []
    produced = 0
    while produced < tasks or in_flight:
        # keep 16 to 32 tasks in flight: their events interleave, the backlog stays bounded
        if produced < tasks and len(in_flight) < 32 and (len(in_flight) < 16 or rng.random() < 0.3):
            uuid = f"{rng.getrandbits(128):032x}"
            uuid = f"{uuid[:8]}-{uuid[8:12]}-{uuid[12:16]}-{uuid[16:20]}-{uuid[20:]}"
            worker = rng.choice(WORKERS)
            name = rng.choice(NAMES)
            args = f"({rng.randint(1, 10**6)}, 'user-{rng.randint(1, 10**4)}')"
            ok = rng.random() > 0.05
            final = (dict(type="task-succeeded", result=f"{{'id': {rng.randint(1, 10**6)}}}",
                          runtime=round(rng.random(), 6)) if ok else
                     dict(type="task-failed", exception="ValueError('boom')",
                          traceback="Traceback (most recent call last):\n  File \"x\"\nValueError"))
            in_flight.append([
                dict(type="task-sent", uuid=uuid, hostname="gen123@web.bench", pid=123, name=name,
                     args=args, kwargs="{}", retries=0, eta=None, expires=None, queue="celery",
                     exchange="", routing_key="celery", root_id=uuid, parent_id=None),
                dict(type="task-received", uuid=uuid, hostname=worker, pid=4000, name=name,
                     args=args, kwargs="{}", root_id=uuid, parent_id=None, retries=0, eta=None,
                     expires=None),
                dict(type="task-started", uuid=uuid, hostname=worker, pid=4000),
                dict(final, uuid=uuid, hostname=worker, pid=4000),
            ])
            produced += 1
        index = rng.randrange(len(in_flight))
        event = in_flight[index].pop(0)
        if not in_flight[index]:
            in_flight.pop(index)
        clock += 1
        now += 0.0004
        event.update(clock=clock, timestamp=now, utcoffset=0.0, local_received=now + 0.001)
        yield event
        if clock % 500 == 0:
            for worker in WORKERS:
                clock += 1
                yield dict(type="worker-heartbeat", hostname=worker, pid=4000, clock=clock,
                           freq=2.0, active=3, processed=clock, loadavg=[0.5, 0.4, 0.3],
                           sw_ident="py-celery", sw_ver="5.7.0", sw_sys="Linux", timestamp=now,
                           utcoffset=0.0, local_received=now + 0.001)


def prepared_stream(tasks: int, seed: int = 1) -> list[dict[str, Any]]:
    """The whole stream as a list (built before timing)."""
    return list(task_events(tasks, seed))
