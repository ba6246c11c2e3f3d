"""What ``make bench`` measures: the cases, their sizes and repetitions, and the targets.

Every case runs ``python -m bench.run_case --impl IMPL <args>`` once per implementation and
repetition. ``{redis}``, ``{amqp}`` and ``{workdir}`` in the arguments are filled in by the
runner (the private brokers' URLs and a scratch folder).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

__all__ = ("Case", "Sizes", "Target", "FULL", "QUICK", "plan", "TARGETS")

#: The median of one metric, by case key, then implementation.
Medians = Mapping[str, Mapping[str, float | None]]


@dataclass(frozen=True, slots=True)
class Sizes:
    """How big and how often: the full run, or the smoke run of ``BENCH_QUICK=1``."""

    small_tasks: int
    large_tasks: int
    events: int
    overload_rate: float
    overload_seconds: float
    frame_tasks: int
    frames: int
    fast_reps: int
    slow_reps: int
    loss_seconds: int
    #: Events of the busy stream ``bench/pushdown.py`` publishes on each broker.
    pushdown_events: int


FULL = Sizes(small_tasks=10_000, large_tasks=100_000, events=100_000, overload_rate=25_000,
             overload_seconds=8, frame_tasks=100_000, frames=30, fast_reps=5, slow_reps=3,
             loss_seconds=20, pushdown_events=50_000)
QUICK = Sizes(small_tasks=2_000, large_tasks=20_000, events=10_000, overload_rate=25_000,
              overload_seconds=2, frame_tasks=10_000, frames=10, fast_reps=1, slow_reps=1,
              loss_seconds=2, pushdown_events=5_000)


@dataclass(frozen=True, slots=True)
class Case:
    """One comparison: the same run_case arguments for both implementations."""

    key: str
    section: str
    title: str
    args: tuple[str, ...]
    metric: str
    unit: str
    reps: int
    lower_is_better: bool = False
    timeout: float = 600.0
    details: tuple[str, ...] = field(default=())
    #: Environment of both implementations' runs (``{repo}`` is the checkout).
    env: tuple[tuple[str, str], ...] = ()


#: The benchmark venv has evtools[speedups] (orjson, hiredis); these rows hide both from both
#: implementations, as where they are not installed.
WITHOUT_SPEEDUPS = (("PYTHONPATH", "{repo}/bench/without_speedups"),)

#: The rate above what evtools took from Redis before speedups, at which loss is measured.
LOSS_RATE = 50_000


@dataclass(frozen=True, slots=True)
class Target:
    """A goal from the issue: its wording, and a check over the medians (None: not measured)."""

    text: str
    check: Callable[[Medians], bool | None]


def _k(count: int) -> str:
    return f"{count // 1000}k" if count >= 1000 else str(count)


def _ingest_cases(s: Sizes) -> list[Case]:
    small, large = s.small_tasks, s.large_tasks
    section = "State.event ingest"

    def case(key: str, title: str, args: tuple[str, ...], reps: int) -> Case:
        return Case(key, section, title, ("--case", "ingest", *args), "rate", "events/s", reps,
                    details=("tasks_kept",))

    return [
        case("ingest-small", f"{_k(small)} tasks, {_k(small)} kept",
             ("--tasks", str(small), "--max-tasks", str(small)), s.fast_reps),
        case("ingest-small-nogc", f"{_k(small)} tasks, {_k(small)} kept, GC disabled",
             ("--tasks", str(small), "--max-tasks", str(small), "--no-gc"), s.fast_reps),
        case("ingest-large-kept", f"{_k(large)} tasks, {_k(large)} kept",
             ("--tasks", str(large), "--max-tasks", str(large)), s.slow_reps),
        case("ingest-large-default", f"{_k(large)} tasks, default limit (10k kept)",
             ("--tasks", str(large)), s.slow_reps),
        case("ingest-large-default-nogc", f"{_k(large)} tasks, default limit, GC disabled",
             ("--tasks", str(large), "--no-gc"), s.slow_reps),
    ]


def _memory_cases(s: Sizes) -> list[Case]:
    large = s.large_tasks
    return [Case("memory-large", "Memory per retained task",
                 f"RSS growth / tasks kept, {_k(large)} tasks, {_k(large)} kept",
                 ("--case", "memory", "--tasks", str(large), "--max-tasks", str(large)),
                 "bytes_per_task", "bytes/task", s.slow_reps, lower_is_better=True,
                 details=("tasks_kept",))]


def _ceiling_cases(s: Sizes) -> list[Case]:
    tasks = s.large_tasks * 2
    return [Case("ceiling", "Memory ceiling under a flood",
                 f"peak RSS growth, ~{_k(tasks * 5)} events over {_k(tasks)} tasks, default limits",
                 ("--case", "ceiling", "--tasks", str(tasks)), "peak_growth_mib", "MiB",
                 s.slow_reps, lower_is_better=True, details=("events", "tasks_kept", "peak_mib"))]


def _receiver_cases(s: Sizes) -> list[Case]:
    cases = []
    for broker, name in (("amqp", "RabbitMQ"), ("redis", "Redis")):
        base = ("--case", "receiver", "--broker", "{%s}" % broker, "--events", str(s.events))
        details = ("events", "published", "error")
        for shape, shape_text in (("single", "single-event bodies"), ("multi", "task.multi lists")):
            for handler, handler_text in (("state", "State"), ("noop", "no-op handler")):
                cases.append(Case(
                    f"receiver-{broker}-{shape}-{handler}", "Receiver throughput",
                    f"{name}, {shape_text}, {handler_text}, without speedups",
                    (*base, "--shape", shape, "--handler", handler, "--workdir", "{workdir}"),
                    "rate", "events/s", s.slow_reps, details=details, env=WITHOUT_SPEEDUPS))
                if shape == "single" and handler == "state":
                    cases.append(Case(
                        f"receiver-{broker}-single-state-speedups", "Receiver throughput",
                        f"{name}, {shape_text}, {handler_text}, with speedups (orjson, hiredis)",
                        (*base, "--shape", shape, "--handler", handler, "--workdir", "{workdir}"),
                        "rate", "events/s", s.slow_reps, details=details))
        cases.append(Case(
            f"receiver-{broker}-library", "Receiver throughput",
            f"{name}, single-event bodies, State, library path (evtools.connect / kombu.Connection),"
            " without speedups",
            (*base, "--shape", "single", "--handler", "state", "--workdir", "{workdir}", "--path", "library"),
            "rate", "events/s", s.slow_reps, details=details, env=WITHOUT_SPEEDUPS))
    # Long enough for a backlog to outgrow Redis' 32 MB subscriber buffer (2 s do not).
    loss_events = LOSS_RATE * s.loss_seconds
    for suffix, env, text in (("", WITHOUT_SPEEDUPS, "without speedups"), ("-speedups", (), "with speedups")):
        cases.append(Case(
            f"receiver-redis-loss{suffix}", "Receiver loss above the old ceiling",
            f"Redis, {LOSS_RATE:,} events/s for {s.loss_seconds:g} s, State, {text}",
            ("--case", "receiver", "--broker", "{redis}", "--events", str(loss_events), "--rate",
             f"{LOSS_RATE:g}", "--shape", "single", "--handler", "state", "--workdir", "{workdir}"),
            "loss", "%", s.slow_reps, lower_is_better=True,
            details=("events", "published", "error"), env=env))
    return cases


def _dump_cases(s: Sizes) -> list[Case]:
    cases = []
    overload_events = int(s.overload_rate * s.overload_seconds)
    for broker, name in (("amqp", "RabbitMQ"), ("redis", "Redis")):
        cases.append(Case(
            f"dump-{broker}", "--dump drain", f"{name}, {_k(s.events)} events published flat out",
            ("--case", "dump", "--broker", "{%s}" % broker, "--events", str(s.events),
             "--workdir", "{workdir}"),
            "rate", "lines/s", s.slow_reps, details=("printed", "published", "publisher_rate"),
            env=WITHOUT_SPEEDUPS))
    for broker, name in (("amqp", "RabbitMQ"), ("redis", "Redis")):
        cases.append(Case(
            f"overload-{broker}", "Loss under overload",
            f"{name}, {s.overload_rate:,.0f} events/s for {s.overload_seconds:g} s",
            ("--case", "dump", "--broker", "{%s}" % broker, "--events", str(overload_events),
             "--rate", f"{s.overload_rate:g}", "--workdir", "{workdir}"),
            "loss", "%", s.slow_reps, lower_is_better=True,
            details=("printed", "published", "publisher_rate"), env=WITHOUT_SPEEDUPS))
    return cases


def _frame_cases(s: Sizes) -> list[Case]:
    return [Case("frame", "Monitor frame",
                 f"build + draw one screen, {_k(s.frame_tasks)} tasks in the State",
                 ("--case", "frame", "--tasks", str(s.frame_tasks), "--frames", str(s.frames)),
                 "frame_ms", "ms", s.slow_reps, lower_is_better=True,
                 details=("frame_task_rows", "monitor_draw_ms"))]


def plan(sizes: Sizes) -> list[Case]:
    """Every case, in the order they run."""
    return (_ingest_cases(sizes) + _memory_cases(sizes) + _ceiling_cases(sizes)
            + _receiver_cases(sizes)
            + _dump_cases(sizes) + _frame_cases(sizes))


def _ratio(medians: Medians, key: str) -> float | None:
    values = medians.get(key, {})
    ours, theirs = values.get("evtools"), values.get("celery")
    if ours is None or not theirs:
        return None
    return ours / theirs


def _at_least(key: str, floor: float) -> Callable[[Medians], bool | None]:
    def check(medians: Medians) -> bool | None:
        ratio = _ratio(medians, key)
        return None if ratio is None else ratio >= floor
    return check


def _at_most(key: str, ceiling: float) -> Callable[[Medians], bool | None]:
    def check(medians: Medians) -> bool | None:
        ratio = _ratio(medians, key)
        return None if ratio is None else ratio <= ceiling
    return check


def _evtools_at_most(key: str, ceiling: float) -> Callable[[Medians], bool | None]:
    def check(medians: Medians) -> bool | None:
        value = medians.get(key, {}).get("evtools")
        return None if value is None else value <= ceiling
    return check


def _large_default_check(medians: Medians) -> bool | None:
    ratio = _ratio(medians, "ingest-large-default")
    large = medians.get("ingest-large-default", {}).get("evtools")
    small = medians.get("ingest-small", {}).get("evtools")
    if ratio is None or large is None or small is None:
        return None
    return ratio >= 5 and large >= small


#: The issue's targets, by case key.
TARGETS: dict[str, Target] = {
    "ingest-small": Target("≥ 3×", _at_least("ingest-small", 3)),
    "ingest-large-default": Target("≥ 5×, and evtools no slower than at the small size",
                                   _large_default_check),
    "memory-large": Target("≤ 1/3 of Celery's", _at_most("memory-large", 1 / 3)),
    "receiver-amqp-single-state": Target("≥ 2×", _at_least("receiver-amqp-single-state", 2)),
    "receiver-redis-single-state": Target("≥ 2×", _at_least("receiver-redis-single-state", 2)),
    "receiver-amqp-single-state-speedups": Target(
        "≥ 4×", _at_least("receiver-amqp-single-state-speedups", 4)),
    "receiver-redis-single-state-speedups": Target(
        "≥ 5×", _at_least("receiver-redis-single-state-speedups", 5)),
    "receiver-amqp-library": Target("≥ 3×", _at_least("receiver-amqp-library", 3)),
    "receiver-redis-library": Target("≥ 3×", _at_least("receiver-redis-library", 3)),
    "dump-amqp": Target("≥ 2×", _at_least("dump-amqp", 2)),
    "dump-redis": Target("≥ 2×", _at_least("dump-redis", 2)),
    "overload-amqp": Target("evtools loses 0 %", _evtools_at_most("overload-amqp", 0.0)),
    "frame": Target("evtools ≤ 20 ms", _evtools_at_most("frame", 20.0)),
}
