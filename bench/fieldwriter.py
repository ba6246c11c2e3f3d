"""Does the compiled field writer still pay?  State ingest with it, and with the plain loop only.

    python -m bench.fieldwriter [--runs 7]                    # State ingest
    python -m tests.servers run -- python -m bench.fieldwriter --broker redis   # end to end

Each measurement is ``bench.run_case --case ingest`` in a fresh process; the "loop" runs set
``evtools.fieldwriter.COMPILE_AFTER`` so high that no shape is ever compiled, so every event
goes through ``WriterCache.write_slowly`` (the same copy, one key at a time). The two modes
alternate; the medians and their ratio are printed, one line per size.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

RUN = r"""
import sys
import evtools.fieldwriter as fieldwriter
if sys.argv[1] == "loop":
    fieldwriter.COMPILE_AFTER = 10 ** 12
sys.argv = ["run_case", "--impl", "evtools", *sys.argv[2:]]
from bench.run_case import main
main()
"""


def rate(mode: str, case: list[str]) -> float:
    """Events per second of one run of ``bench.run_case`` in a fresh process."""
    done = subprocess.run([sys.executable, "-c", RUN, mode, *case], capture_output=True,
                          text=True, check=True)
    return float(json.loads(done.stdout.strip().splitlines()[-1])["rate"])


def cases(broker: str | None) -> list[tuple[str, list[str]]]:
    """State ingest at two sizes, or receiver + State through a real broker."""
    if broker is None:
        return [(f"ingest {n:,} tasks", ["--case", "ingest", "--tasks", str(n)])
                for n in (10_000, 100_000)]
    url = os.environ[{"redis": "EVTOOLS_TEST_REDIS_URL", "amqp": "EVTOOLS_TEST_AMQP_URL"}[broker]]
    workdir = tempfile.mkdtemp(prefix="evtools-fieldwriter-")
    return [(f"receiver + State on {broker}", ["--case", "receiver", "--broker", url, "--events",
                                               "100000", "--shape", "single", "--handler", "state",
                                               "--workdir", workdir])]


def main() -> None:
    """Print compiled and loop-only ingest rates and their ratio for 10k and 100k tasks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--broker", choices=("redis", "amqp"),
                        help="measure receiver + State on this broker (under tests.servers run)")
    args = parser.parse_args()
    for title, case in cases(args.broker):
        rates: dict[str, list[float]] = {"compiled": [], "loop": []}
        for _ in range(args.runs):
            for mode in rates:
                rates[mode].append(rate(mode, case))
        compiled, loop = (statistics.median(rates[m]) for m in ("compiled", "loop"))
        print(f"{title}: compiled {compiled:,.0f} ev/s, loop only {loop:,.0f} ev/s, "
              f"ratio {compiled / loop:.2f}")


if __name__ == "__main__":
    main()
