"""RESULTS.md: the machine, the commands, and per case the medians, the ratio and the target."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .impls import IMPLS, library_versions
from .plan import TARGETS, Case, Sizes

__all__ = ("Report", "machine", "broker_versions", "median_of")

Results = Mapping[str, Mapping[str, Sequence[dict[str, Any]]]]

REPO = Path(__file__).resolve().parent.parent


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    return 0.0


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                              timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def source_revision() -> str:
    """The commit evtools was measured at, and whether evtools/ had changes not committed."""
    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    changed = _git("status", "--porcelain", "--", "evtools")
    return f"{commit} (+ uncommitted changes in evtools/)" if changed else commit


def machine() -> dict[str, Any]:
    """What the numbers were measured on, and how busy it was."""
    with open("/proc/loadavg") as loadavg:
        load = " ".join(loadavg.read().split()[:3])
    return {"nproc": len(os.sched_getaffinity(0)), "cpu": _cpu_model(),
            "ram_gib": round(_memory_gib(), 1), "python": platform.python_version(),
            "kernel": platform.release(), "load": load, "revision": source_revision(),
            **library_versions()}


def broker_versions(redis_url: str, amqp_url: str) -> dict[str, str]:
    """The versions the private brokers report."""
    import redis
    from kombu import Connection

    versions = {"redis-server": str(redis.Redis.from_url(redis_url).info("server").get("redis_version"))}
    with Connection(amqp_url) as connection:
        connection.connect()
        properties = connection.connection.server_properties
        versions["rabbitmq-server"] = str(properties.get("version", "unknown"))
    return versions


def median_of(runs: Sequence[dict[str, Any]], field: str) -> float | None:
    """The median of ``field`` over the runs that have it."""
    values = [run[field] for run in runs if isinstance(run.get(field), (int, float))]
    return statistics.median(values) if values else None


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "%":
        return f"{value * 100:.1f} %"
    if unit == "ms":
        return f"{value:.2f} ms"
    return f"{value:,.0f} {unit}"


def _ratio(ours: float | None, theirs: float | None, unit: str) -> str:
    if ours is None or theirs is None:
        return "—"
    if theirs == 0:
        return "— (Celery 0)" if unit == "%" else "—"
    return f"{ours / theirs:.2f}×"


def _met(case: Case, medians: Mapping[str, Mapping[str, float | None]]) -> tuple[str, str]:
    target = TARGETS.get(case.key)
    if target is None:
        return "", ""
    verdict = target.check(medians)
    return target.text, {True: "yes", False: "**no**", None: "not measured"}[verdict]


def _detail(case: Case, runs: Sequence[dict[str, Any]]) -> str:
    """The extra facts of a case for one implementation (counts, errors), from its runs."""
    parts = []
    if "printed" in case.details:
        printed, published = median_of(runs, "printed"), median_of(runs, "published")
        if printed is not None and published:
            parts.append(f"{printed:,.0f}/{published:,.0f} printed")
    if "events" in case.details and "published" in case.details:
        events, published = median_of(runs, "events"), median_of(runs, "published")
        if events is not None and published:
            parts.append(f"{events:,.0f}/{published:,.0f} handled")
    if case.unit == "%":
        worst = max((run[case.metric] for run in runs if isinstance(run.get(case.metric), float)),
                    default=None)
        if worst is not None:
            parts.append(f"worst run {worst * 100:.1f} %")
    if "publisher_rate" in case.details:
        rate = median_of(runs, "publisher_rate")
        if rate is not None:
            parts.append(f"published at {rate:,.0f}/s")
    if "frame_task_rows" in case.details:
        rows = median_of(runs, "frame_task_rows")
        if rows is not None:
            parts.append(f"{rows:.0f} task rows")
    if "monitor_draw_ms" in case.details:
        draw = median_of(runs, "monitor_draw_ms")
        if draw is not None:
            parts.append(f"whole monitor screen {draw:.2f} ms")
    errors = sorted({str(run["error"]).split(":")[0] for run in runs if run.get("error")})
    if errors:
        parts.append(f"{sum(1 for r in runs if r.get('error'))}/{len(runs)} runs: {', '.join(errors)}")
    return "; ".join(parts)


@dataclass
class Report:
    """Everything RESULTS.md says."""

    cases: Sequence[Case]
    results: Results
    sizes: Sizes
    quick: bool
    machine_before: dict[str, Any]
    machine_after: dict[str, Any]
    brokers: dict[str, str]
    started_at: float
    seconds: float
    commands: Mapping[str, Sequence[str]]
    #: The section ``bench/pushdown.py`` wrote (markdown lines), if it ran.
    pushdown: Sequence[str] = ()

    def medians(self) -> dict[str, dict[str, float | None]]:
        """The median metric of every case, by implementation."""
        return {case.key: {impl: median_of(self.results[case.key][impl], case.metric)
                           for impl in IMPLS} for case in self.cases}

    def markdown(self) -> str:
        """The whole file."""
        return "\n".join(self._header() + self._tables() + list(self.pushdown) + _soak_summary()
                         + self._shortfalls() + self._commands() + self._raw()) + "\n"

    def _header(self) -> list[str]:
        m, after = self.machine_before, self.machine_after
        when = datetime.fromtimestamp(self.started_at, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        kind = "a smoke run, `BENCH_QUICK=1`: one repetition, small sizes" if self.quick else "full run"
        return [
            "# evtools vs Celery: benchmark results", "",
            f"Written by `make bench` ({kind}) on {when}; the run took {self.seconds / 60:.1f} min.",
            "Each figure is the median of fresh-process runs, evtools and Celery alternating "
            "(which one goes first flips every repetition), on the same deterministic event "
            "stream (`bench/stream.py`). The ratio is evtools / Celery.", "",
            "| Machine | |", "|---|---|",
            f"| CPUs (`nproc`) | {m['nproc']} |", f"| CPU | {m['cpu']} |",
            f"| RAM | {m['ram_gib']} GiB |", f"| Python | {m['python']} (Linux {m['kernel']}) |",
            f"| evtools / celery / kombu | {m['evtools']} / {m['celery']} / {m['kombu']} |",
            f"| evtools source at start / end | {m['revision']} / {after['revision']} |",
            f"| py-amqp / redis-py | {m['amqp']} / {m['redis']} |",
            f"| redis-server / rabbitmq-server | {self.brokers.get('redis-server')} / "
            f"{self.brokers.get('rabbitmq-server')} (private, on loopback) |",
            f"| load average at start / end | {m['load']} / {after['load']} "
            f"(each run's is in the JSON below, `load_before`) |", "",
            f"**Caveat:** the machine has {m['nproc']} cores, and other work (test suites, other "
            "benchmarks) ran on it concurrently; the broker, the publisher and the process "
            "measured share those cores. Alternating the implementations spreads that noise over "
            "both, but single figures can move by tens of percent from one run to the next.", "",
        ]

    def _tables(self) -> list[str]:
        medians = self.medians()
        lines: list[str] = []
        section = None
        for case in self.cases:
            if case.section != section:
                section = case.section
                lines += ["", f"## {section}", "", _SECTION_NOTES.get(section, ""), "",
                          "| Case | evtools | Celery | ratio | target | met | runs "
                          "| evtools details | Celery details |",
                          "|---|---:|---:|---:|---|---|---:|---|---|"]
            ours, theirs = medians[case.key]["evtools"], medians[case.key]["celery"]
            target, met = _met(case, medians)
            runs = self.results[case.key]
            lines.append(f"| {case.title} | {_number(ours, case.unit)} | {_number(theirs, case.unit)} "
                         f"| {_ratio(ours, theirs, case.unit)} | {target} | {met} | "
                         f"{len(runs['evtools'])}+{len(runs['celery'])} | "
                         f"{_detail(case, runs['evtools'])} | {_detail(case, runs['celery'])} |")
        return lines

    def _shortfalls(self) -> list[str]:
        medians = self.medians()
        missed = [case for case in self.cases if _met(case, medians)[1] == "**no**"]
        lines = ["", "## Targets missed", ""]
        if not missed:
            return lines + ["None."]
        for case in missed:
            ours, theirs = medians[case.key]["evtools"], medians[case.key]["celery"]
            lines.append(f"- {case.section}, {case.title}: evtools {_number(ours, case.unit)}, "
                         f"Celery {_number(theirs, case.unit)} "
                         f"(ratio {_ratio(ours, theirs, case.unit)}; target {TARGETS[case.key].text}).")
        lines += ["", "Where the time goes in these cases, with the profiles: "
                      "[PROFILES.md](PROFILES.md)."]
        return lines

    def _commands(self) -> list[str]:
        lines = ["", "## Commands", "", "```sh",
                 "make bench                  # this file (BENCH_QUICK=1 make bench: smoke run)",
                 "# = python3 -m venv .bench-venv && .bench-venv/bin/pip install -e '.[redis]' "
                 "celery==5.7.0 redis",
                 "#   .bench-venv/bin/python -m bench.run",
                 "# which runs each measurement in a fresh process, IMPL = evtools or celery:"]
        seen = set()
        for case in self.cases:
            command = " ".join(self.commands[case.key])
            if command not in seen:
                seen.add(command)
                lines.append(command)
        if self.pushdown:
            lines.append(f"python -m bench.pushdown --events {self.sizes.pushdown_events}"
                         "   # the pushdown section (alone: on its own brokers)")
        lines += ["```", "",
                  "`$REDIS_URL` and `$AMQP_URL` are the private brokers `bench/run.py` starts with "
                  "`tests/servers.py`; `$WORKDIR` is its scratch folder. The receiver and dump "
                  "cases start `python -m bench.publish` themselves; the dump cases run "
                  "`python -m evtools events --dump -b URL` and `python -m celery -b URL events --dump`. "
                  "Add `--profile FILE` to a run_case command to profile its timed part "
                  "(top 15 functions by own time on stderr)."]
        return lines

    def _raw(self) -> list[str]:
        lines = ["", "<details><summary>Every run (JSON)</summary>", "", "```"]
        for case in self.cases:
            for impl in IMPLS:
                for run in self.results[case.key][impl]:
                    lines.append(json.dumps({"case": case.key, "impl": impl, **{
                        k: (round(v, 4) if isinstance(v, float) else v) for k, v in run.items()
                        if k not in ("impl", "case")}}))
        return lines + ["```", "", "</details>"]


def _soak_summary() -> list[str]:
    """The last soak run (``make soak`` writes bench/SOAK.md): its counts and RSS curve ends."""
    soak = Path(__file__).with_name("SOAK.md")
    if not soak.exists():
        return []
    text = soak.read_text()
    rows = [line.split("|")[1:5] for line in text.splitlines()
            if line.startswith("| ") and line.split("|")[1].strip().isdigit()]
    lines = ["", "## Soak", "",
             "`make soak` (bench/soak.py): events through a real broker into the monitor in a "
             "pseudo-terminal and a camera, RSS sampled every 5 s; the whole curve is in "
             "[SOAK.md](SOAK.md)."]
    lines += [line for line in text.splitlines() if line.startswith(("Events published",
                                                                      "Command", "Machine"))]
    if rows:
        first, minute, last = rows[1] if len(rows) > 1 else rows[0], rows[min(12, len(rows) - 1)], rows[-1]
        lines += ["", "| at | monitor RSS (MiB) | camera RSS (MiB) | events published |",
                  "|---:|---:|---:|---:|"]
        lines += [f"| {r[0].strip()} s | {r[1].strip()} | {r[2].strip()} | {r[3].strip()} |"
                  for r in (first, minute, last)]
    return lines


_SECTION_NOTES = {
    "Memory ceiling under a flood": (
        "A flood with the default limits (10,000 tasks, 5,000 workers): five events per task "
        "(sent, received, started, a custom progress event, succeeded or failed), one in five "
        "received events naming a parent that never appears, generated as it is fed. The figure "
        "is the peak RSS minus the RSS before the first event. Lower is better."),
    "State.event ingest": (
        "Events per second through `State.event`, the events built before the clock starts "
        "(`prepared_stream`), the garbage collector on as it is unless noted (the prepared "
        "input is `gc.freeze()`-d: it is the benchmark's, not the State's)."),
    "Memory per retained task": (
        "RSS after feeding the stream (generated lazily, so no event list is held) minus RSS "
        "before, after `gc.collect()`, divided by the tasks kept. Lower is better."),
    "Receiver throughput": (
        "Events handled per second by `EventReceiver` (evtools) / `app.events.Receiver` "
        "(Celery), both on kombu. RabbitMQ: the events wait in the receiver's queue (declared "
        "first, no TTL) and the clock runs from `capture()` to the last event. Redis keeps "
        "nothing: a publisher process sends flat out while the receiver consumes, the rate runs "
        "from the first event handled to the last, and Redis disconnects a subscriber whose "
        "output buffer passes 32 MB (`ConnectionError` below: the rest were lost). "
        "task.multi: task events in lists of 8 per message, as prefork workers send them."),
    "--dump drain": (
        "The CLI dumps (`evtools events --dump`, `celery events --dump`) writing Celery's human "
        "format to a file, default queue settings (message TTL 5 s on RabbitMQ). The dump starts "
        "first, then the events are published flat out; lines/s = event lines printed / time "
        "from the first publish to the last line."),
    "Loss under overload": (
        "The same dumps while a paced publisher sends single-event messages at a fixed rate. "
        "Loss = 1 − printed / published (RabbitMQ drops messages older than the 5 s TTL; Redis "
        "drops a subscriber that falls 32 MB behind). Lower is better."),
    "Monitor frame": (
        "Median time to build and draw one screen in a 160×50 pseudo-terminal. evtools: "
        "`build_frame` + `erase` + `draw_tasks` + `refresh` (details: the monitor's whole "
        "`Monitor.draw`); Celery: `CursesMonitor.draw` (it lists the last 40 *events*' tasks, "
        "hence fewer rows)."),
}
