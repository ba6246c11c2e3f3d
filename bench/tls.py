"""Receiver + State throughput over TLS against plain TCP (issue 13).

    python -m tests.servers run -- python -m bench.tls [--events 30000] [--runs 3]
                                                       [--redis-rate 50000]

Needs the test servers' environment (``EVTOOLS_TEST_AMQP_URL``, ``..._AMQPS_URL``,
``..._REDIS_URL``, ``..._REDISS_URL``, ``..._TLS_DIR``). Six configurations: evtools on
``amqp://`` (its read-ahead transport), evtools and Celery on ``amqps://`` (kombu's transport,
verified TLS), and the same on ``redis://`` / ``rediss://`` (client certificate). Each
measurement runs in a fresh process (``--case``) with the helpers of ``bench/receive.py``; the
configurations alternate within each run. Same pre-encoded single events as ``bench/run.py``:
on RabbitMQ published first into the receiver's queue (over the plain listener of the same
broker, so only the receiver speaks TLS), on Redis published live once the receiver has
subscribed (over TLS on the TLS-only server; rate from first to last event handled).
Flat out, the publisher outruns a receiver on kombu's Redis transport by far and Redis
disconnects it (32 MB behind): ``--redis-rate`` paces it, and a receiver slower than that
rate is measured while its backlog grows.
Prints the median per configuration, its ratio to evtools on plain TCP, and the transport
class each receiver's connection used.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ("CONFIGS", "main")

#: (name, implementation, URL variable, TLS, plain URL variable the publisher uses, baseline)
CONFIGS = (
    ("evtools amqp://", "evtools", "EVTOOLS_TEST_AMQP_URL", None, None),
    ("evtools amqps://", "evtools", "EVTOOLS_TEST_AMQPS_URL", "amqp", "EVTOOLS_TEST_AMQP_URL"),
    ("Celery amqps://", "celery", "EVTOOLS_TEST_AMQPS_URL", "amqp", "EVTOOLS_TEST_AMQP_URL"),
    ("evtools redis://", "evtools", "EVTOOLS_TEST_REDIS_URL", None, None),
    ("evtools rediss://", "evtools", "EVTOOLS_TEST_REDISS_URL", "redis", None),
    ("Celery rediss://", "celery", "EVTOOLS_TEST_REDISS_URL", "redis", None),
)


def tls_options(kind: str | None) -> dict[str, str] | None:
    """Verified TLS as tests/integration/test_tls.py uses it (Redis also wants a client cert)."""
    if kind is None:
        return None
    tls = Path(os.environ["EVTOOLS_TEST_TLS_DIR"])
    options = {"cert_reqs": "required", "ca_certs": str(tls / "ca.pem")}
    if kind == "redis":
        options.update(certfile=str(tls / "client.pem"), keyfile=str(tls / "client.key"))
    return options


def run_case(index: int, events: int, workdir: Path, rate: float | None = None) -> dict[str, Any]:
    """Measure configuration ``index`` in this process."""
    from .receive import measure_receiver

    _name, impl, url_var, tls, publish_var = CONFIGS[index]
    url = os.environ[url_var]
    node_id = f"bench-tls-{impl}-{uuid.uuid4().hex[:12]}"
    scheme = url.split("://")[0]
    return measure_receiver(impl, url, events, "single", "state", workdir / f"cache-{scheme}",
                            node_id, rate=rate if url.startswith("redis") else None,
                            ssl=tls_options(tls),
                            publish_url=os.environ[publish_var] if publish_var else None)


def measure(index: int, events: int, workdir: Path, rate: float | None = None) -> dict[str, Any]:
    """Run configuration ``index`` in a fresh process; its JSON line."""
    done = subprocess.run([sys.executable, "-m", "bench.tls", "--case", str(index), "--events",
                           str(events), "--workdir", str(workdir)]
                          + (["--redis-rate", f"{rate:g}"] if rate else []),
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed",
                "rate": 0.0, "events": 0}
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(results: dict[int, list[dict[str, Any]]]) -> list[str]:
    """Markdown rows: median rate, ratio to evtools on plain TCP of the same broker, transport."""
    lines = ["| configuration | transport | median events/s | runs | vs plain evtools | notes |",
             "|---|---|---:|---|---:|---|"]
    baseline = 0.0
    for index, (name, *_rest) in enumerate(CONFIGS):
        runs = results.get(index, [])
        rates = [r["rate"] for r in runs]
        median = statistics.median(rates) if rates else 0.0
        if CONFIGS[index][3] is None:
            baseline = median
        transports = sorted({r.get("transport") or "?" for r in runs})
        notes = sorted({r["error"] for r in runs if r.get("error")})
        losses = [r["loss"] for r in runs if r.get("loss")]
        if losses:
            notes.append(f"lost up to {max(losses):.1%}")
        publisher = [r["publisher_rate"] for r in runs if r.get("publisher_rate")]
        if publisher and "redis" in name:
            notes.append(f"publisher {statistics.median(publisher):,.0f}/s")
        lines.append(f"| {name} | {', '.join(f'`{t}`' for t in transports)} | {median:,.0f} | "
                     f"{' / '.join(f'{r:,.0f}' for r in rates)} | "
                     f"{median / baseline if baseline else 0:.2f} | {'; '.join(notes)} |")
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line; one case, or all of them alternating."""
    parser = argparse.ArgumentParser(prog="python -m bench.tls", description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=30_000, help="events per measurement")
    parser.add_argument("--runs", type=int, default=3, help="measurements per configuration")
    parser.add_argument("--redis-rate", type=float, default=None,
                        help="pace the Redis publisher at this many events/s (default: flat out)")
    parser.add_argument("--case", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder")
    args = parser.parse_args(argv)
    if args.case is not None:
        print(json.dumps(run_case(args.case, args.events, args.workdir, args.redis_rate)), flush=True)
        return
    results: dict[int, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-tls-") as scratch:
        workdir = Path(args.workdir or scratch)
        order = list(range(len(CONFIGS)))
        for run in range(args.runs):
            for index in order[run % len(order):] + order[:run % len(order)]:
                result = measure(index, args.events, workdir, args.redis_rate)
                results.setdefault(index, []).append(result)
                print(f"run {run + 1} {CONFIGS[index][0]}: {result['rate']:,.0f} events/s "
                      f"({result.get('events')} events, {result.get('transport')}"
                      f"{', ' + result['error'] if result.get('error') else ''})",
                      file=sys.stderr, flush=True)
    print(f"{args.events:,} single events, receiver + State, {args.runs} runs, "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("\n".join(table(results)))


if __name__ == "__main__":
    main()
