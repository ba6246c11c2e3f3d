"""One measurement of one implementation, in a fresh process; prints one JSON line.

    python -m bench.run_case --impl evtools|celery --case ingest --tasks 10000 [--max-tasks N] [--no-gc]
    python -m bench.run_case --impl ... --case memory --tasks 100000 --max-tasks 100000
    python -m bench.run_case --impl ... --case receiver --broker URL --events 100000
                             --shape single|multi --handler state|noop --workdir DIR
                             [--path cli|library] [--rate 50000]
    python -m bench.run_case --impl ... --case dump --broker URL --events 100000 [--rate 25000]
                             --workdir DIR
    python -m bench.run_case --impl ... --case frame --tasks 100000 --frames 30

``--profile FILE`` runs the timed part under cProfile (for the dump: the dump process, which
must exit cleanly on SIGTERM to write it), saves the stats to FILE and prints the top 15
functions by own time to stderr.

A fresh process per measurement keeps one run's memory and garbage collector state out of
the next. ``bench/run.py`` runs these, alternating the implementations.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import json
import os
import pstats
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .impls import IMPLS, new_state
from .stream import prepared_stream, task_events

__all__ = ("CASES", "main")


def rss_bytes() -> int:
    """The resident set size of this process now."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@contextlib.contextmanager
def timed_part(args: argparse.Namespace) -> Iterator[None]:
    """Mark the timed part of a case: profiled when ``--profile`` is given."""
    if args.profile is None:
        yield
        return
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        yield
    finally:
        profiler.disable()
        profiler.dump_stats(args.profile)


def print_top(path: Path, count: int = 15) -> None:
    """Print the ``count`` functions with the most own time in the stats at ``path`` to stderr."""
    if not path.exists():
        print(f"no profile was written to {path}", file=sys.stderr)
        return
    pstats.Stats(str(path), stream=sys.stderr).sort_stats("tottime").print_stats(count)


def case_ingest(args: argparse.Namespace) -> dict[str, Any]:
    """``State.event`` over a prepared stream: events per second, garbage collector as it is."""
    events = prepared_stream(args.tasks)
    state = new_state(args.impl, args.max_tasks)
    gc.collect()
    gc.freeze()  # the prepared input is not the State's: collections need not walk it
    if args.no_gc:
        gc.disable()
    event = state.event
    with timed_part(args):
        began = time.perf_counter()
        for item in events:
            event(item)
        seconds = time.perf_counter() - began
    return {"events": len(events), "seconds": seconds, "rate": len(events) / seconds,
            "tasks_kept": len(state.tasks)}


def case_memory(args: argparse.Namespace) -> dict[str, Any]:
    """RSS growth per task kept, the stream fed as it is generated (no event list in memory)."""
    state = new_state(args.impl, args.max_tasks)
    gc.collect()
    before = rss_bytes()
    fed = 0
    for event in task_events(args.tasks):
        state.event(event)
        fed += 1
    gc.collect()
    grown = rss_bytes() - before
    kept = len(state.tasks)
    return {"events": fed, "tasks_kept": kept, "rss_growth": grown, "bytes_per_task": grown / kept}


def case_receiver(args: argparse.Namespace) -> dict[str, Any]:
    """Events from a real broker through the receiver into a State (or a no-op handler)."""
    from .receive import measure_receiver

    node_id = f"bench-{args.impl}-{uuid.uuid4().hex[:12]}"
    return measure_receiver(args.impl, args.broker, args.events, args.shape, args.handler,
                            args.workdir / "publish-cache", node_id, args.path, args.rate,
                            lambda: timed_part(args))


def case_dump(args: argparse.Namespace) -> dict[str, Any]:
    """The ``--dump`` command draining events published flat out (or at ``--rate``)."""
    from .dump import measure_dump

    return measure_dump(args.impl, args.broker, args.events, args.workdir,
                        args.workdir / "publish-cache", args.rate, args.profile)


def case_frame(args: argparse.Namespace) -> dict[str, Any]:
    """Build and draw the monitor's screen with ``--tasks`` tasks in the State."""
    from .frame import time_frames

    state = new_state(args.impl, args.tasks)
    for event in task_events(args.tasks):
        state.event(event)
    gc.collect()
    return {"tasks_kept": len(state.tasks), **time_frames(args.impl, state, args.frames)}


def case_ceiling(args: argparse.Namespace) -> dict[str, Any]:
    """Peak memory under a flood (5 events a task, orphans included) with the default limits."""
    from .ceiling import main as flood

    return flood(args.impl, args.tasks)


CASES: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "ingest": case_ingest, "memory": case_memory, "receiver": case_receiver,
    "dump": case_dump, "frame": case_frame, "ceiling": case_ceiling,
}


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.run_case",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--impl", choices=IMPLS, required=True)
    parser.add_argument("--case", choices=sorted(CASES), required=True)
    parser.add_argument("--tasks", type=int, default=10_000, help="tasks in the stream")
    parser.add_argument("--max-tasks", type=int, default=None,
                        help="State(max_tasks_in_memory=N); default: the library's own")
    parser.add_argument("--no-gc", action="store_true", help="ingest: disable the garbage collector")
    parser.add_argument("--broker", default=None, help="broker URL")
    parser.add_argument("--events", type=int, default=100_000, help="events to publish")
    parser.add_argument("--shape", choices=("single", "multi"), default="single")
    parser.add_argument("--handler", choices=("state", "noop"), default="state")
    parser.add_argument("--path", choices=("cli", "library"), default="cli",
                        help="receiver: connect as the CLI does, or as a library user does")
    parser.add_argument("--rate", type=float, default=None,
                        help="dump, receiver: publish at this many events/s")
    parser.add_argument("--frames", type=int, default=30, help="frame: how many frames to time")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp"), help="scratch folder")
    parser.add_argument("--profile", type=Path, default=None,
                        help="profile the timed part into this file; print the top 15 to stderr")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the case and print its result as one JSON line."""
    args = parse(argv)
    result = {"impl": args.impl, "case": args.case, **CASES[args.case](args)}
    print(json.dumps(result), flush=True)
    if args.profile is not None:
        print_top(args.profile)


if __name__ == "__main__":
    main()
