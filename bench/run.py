"""``make bench``: evtools against Celery on the same event stream, in the same run; writes RESULTS.md.

    python -m bench.run                   # the full run (about 15 minutes on 2 cores)
    BENCH_QUICK=1 python -m bench.run     # a smoke run: one repetition of small sizes

Starts a private Redis and RabbitMQ (``tests/servers.py``) in a temporary folder, runs every
case of ``bench/plan.py`` as ``python -m bench.run_case`` in a fresh process per measurement,
alternating which implementation goes first, then ``bench/pushdown.py`` (messages delivered
with type filters pushed down to the broker), and writes the medians and ratios to
``bench/RESULTS.md`` (``bench/RESULTS-quick.md`` for a smoke run; ``BENCH_RESULTS=PATH``
overrides). The brokers are stopped and the folder removed whatever happens.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from tests.servers import RabbitServer, RedisServer, epmd_running, free_port, stop_idle_epmd

from .impls import IMPLS
from .plan import FULL, QUICK, Case, plan
from .report import Report, broker_versions, machine

__all__ = ("main", "Brokers", "run_case")

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent


@dataclass(frozen=True, slots=True)
class Brokers:
    """Where the private brokers listen, and the scratch folder."""

    redis: str
    amqp: str
    workdir: Path


class _Stopped(BaseException):
    """Raised by the SIGTERM/SIGHUP handler so that the brokers are stopped on the way out."""


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    raise _Stopped(signal.Signals(signum).name)


def say(message: str) -> None:
    """One progress line on stderr."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


@contextmanager
def private_brokers() -> Iterator[Brokers]:
    """Start Redis and RabbitMQ on free loopback ports in a temp folder; stop them whatever happens."""
    workdir = Path(tempfile.mkdtemp(prefix="evtools-bench-"))
    had_epmd = epmd_running()
    servers = [RedisServer(free_port(), workdir / "redis"), RabbitServer(free_port(), workdir / "rabbitmq")]
    try:
        for server in servers:
            server.start()
            say(f"{server.name} up on 127.0.0.1:{server.port} in {server.startup_seconds:.1f} s")
        yield Brokers(servers[0].url, servers[1].url, workdir / "cases")
    finally:
        for server in reversed(servers):
            server.stop()
        if not had_epmd:
            stop_idle_epmd()
        shutil.rmtree(workdir, ignore_errors=True)


def case_command(case: Case, impl: str, brokers: Brokers | None = None) -> list[str]:
    """The run_case command line; placeholders stay when ``brokers`` is None (for the report)."""
    values = ({"redis": brokers.redis, "amqp": brokers.amqp, "workdir": str(brokers.workdir)}
              if brokers is not None else {"redis": "$REDIS_URL", "amqp": "$AMQP_URL",
                                           "workdir": "$WORKDIR"})
    return [sys.executable if brokers else "python", "-m", "bench.run_case", "--impl", impl,
            *(arg.format(**values) for arg in case.args)]


def case_env(case: Case) -> dict[str, str]:
    """The environment of a case's runs: this one, with the case's own variables."""
    return {**os.environ, **{name: value.format(repo=REPO) for name, value in case.env}}


def run_case(command: Sequence[str], timeout: float, log: Path,
             env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one measurement in its own session; return its JSON line (or an ``error``)."""
    with log.open("ab") as err:
        err.write(f"\n$ {' '.join(command)}\n".encode())
        err.flush()
        process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=err,
                                   stdin=subprocess.DEVNULL, start_new_session=True, env=env)
        try:
            out, _ = process.communicate(timeout=timeout)
        except BaseException as exc:
            os.killpg(process.pid, signal.SIGKILL)  # the case's dump and publisher too
            process.wait()
            if isinstance(exc, subprocess.TimeoutExpired):
                return {"error": f"timed out after {timeout:.0f} s"}
            raise
    lines = out.decode(errors="replace").strip().splitlines()
    if process.returncode != 0 or not lines:
        return {"error": f"exit status {process.returncode} (see {log.name})"}
    return json.loads(lines[-1])


def load_average() -> float:
    """The machine's one-minute load average: how much else was running."""
    with open("/proc/loadavg") as loadavg:
        return float(loadavg.read().split()[0])


def _order(rep: int) -> tuple[str, ...]:
    """Alternate which implementation runs first."""
    return IMPLS if rep % 2 == 0 else tuple(reversed(IMPLS))


def _describe(case: Case, result: dict[str, Any]) -> str:
    if result.get("error") and case.metric not in result:
        return f"error: {result['error']}"
    value = result.get(case.metric)
    if value is None:
        return "no value"
    return f"{value * 100:.2f} %" if case.unit == "%" else f"{value:,.2f} {case.unit}"


def run_all(cases: Sequence[Case], brokers: Brokers, log: Path) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Run every case, alternating the implementations; return the results by case and impl."""
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    total = sum(case.reps for case in cases) * len(IMPLS)
    done = 0
    for case in cases:
        by_impl = results[case.key] = {impl: [] for impl in IMPLS}
        for rep in range(case.reps):
            for impl in _order(rep):
                began, load = time.monotonic(), load_average()
                result = run_case(case_command(case, impl, brokers), case.timeout, log, case_env(case))
                result["wall_seconds"] = time.monotonic() - began
                result["load_before"] = load
                by_impl[impl].append(result)
                done += 1
                say(f"{done}/{total} {case.key} rep {rep + 1}/{case.reps} {impl}: "
                    f"{_describe(case, result)} ({result['wall_seconds']:.1f} s)")
    return results


def pushdown_section(brokers: Brokers, events: int) -> list[str]:
    """RESULTS.md's section on type filters pushed down to the broker (``bench/pushdown.py``)."""
    from . import pushdown  # it imports this module for its own command line

    say(f"pushdown: {events:,d} events on each broker, three receivers")
    try:
        delivered = pushdown.measure_brokers(brokers.redis, brokers.amqp, events, say)
    except Exception as exc:  # the comparison's results are still worth writing
        say(f"pushdown failed: {type(exc).__name__}: {exc}")
        return ["", "## Type filters pushed down to the broker", "",
                f"Not measured: `bench/pushdown.py` failed ({type(exc).__name__}: {exc})."]
    return pushdown.section(delivered, events)


def results_path(quick: bool) -> Path:
    """Where the report goes."""
    override = os.environ.get("BENCH_RESULTS")
    if override:
        return Path(override)
    return BENCH_DIR / ("RESULTS-quick.md" if quick else "RESULTS.md")


def main() -> int:
    """Start the brokers, run the plan, write the report."""
    quick = os.environ.get("BENCH_QUICK", "") not in ("", "0")
    sizes = QUICK if quick else FULL
    cases = plan(sizes)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_stopped)
    began, started_at = time.monotonic(), time.time()
    before = machine()
    try:
        with private_brokers() as brokers:
            brokers.workdir.mkdir(parents=True, exist_ok=True)
            log = brokers.workdir.parent / "cases.log"
            versions = broker_versions(brokers.redis, brokers.amqp)
            results = run_all(cases, brokers, log)
            pushdown = pushdown_section(brokers, sizes.pushdown_events)
            kept_log = results_path(quick).with_suffix(".log")
            shutil.copyfile(log, kept_log)
    except _Stopped as stopped:
        say(f"stopped by {stopped}; brokers stopped, nothing written")
        return 1
    except KeyboardInterrupt:
        say("interrupted; brokers stopped, nothing written")
        return 130
    report = Report(cases=cases, results=results, sizes=sizes, quick=quick, machine_before=before,
                    machine_after=machine(), brokers=versions, started_at=started_at,
                    seconds=time.monotonic() - began, pushdown=pushdown,
                    commands={case.key: [f"{name}={value.format(repo='.')}" for name, value in case.env]
                              + case_command(case, "IMPL") for case in cases})
    path = results_path(quick)
    path.write_text(report.markdown())
    say(f"wrote {path} ({time.monotonic() - began:.0f} s); the cases' stderr is in {kept_log.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
