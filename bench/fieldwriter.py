"""Does the compiled field writer still pay?  State ingest with it, and with the plain loop only.

    python -m bench.fieldwriter [--runs 7]

Each measurement is ``bench.run_case --case ingest`` in a fresh process; the "loop" runs set
``evtools.fieldwriter.COMPILE_AFTER`` so high that no shape is ever compiled, so every event
goes through ``WriterCache.write_slowly`` (the same copy, one key at a time). The two modes
alternate; the medians and their ratio are printed, one line per size.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

RUN = r"""
import sys
import evtools.fieldwriter as fieldwriter
if sys.argv[1] == "loop":
    fieldwriter.COMPILE_AFTER = 10 ** 12
sys.argv = ["run_case", "--impl", "evtools", "--case", "ingest", "--tasks", sys.argv[2]]
from bench.run_case import main
main()
"""


def rate(mode: str, tasks: int) -> float:
    """Events per second of one ingest run in a fresh process."""
    done = subprocess.run([sys.executable, "-c", RUN, mode, str(tasks)], capture_output=True,
                          text=True, check=True)
    return float(json.loads(done.stdout.strip().splitlines()[-1])["rate"])


def main() -> None:
    """Print compiled and loop-only ingest rates and their ratio for 10k and 100k tasks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    for tasks in (10_000, 100_000):
        rates: dict[str, list[float]] = {"compiled": [], "loop": []}
        for _ in range(args.runs):
            for mode in rates:
                rates[mode].append(rate(mode, tasks))
        compiled, loop = (statistics.median(rates[m]) for m in ("compiled", "loop"))
        print(f"{tasks:>7} tasks: compiled {compiled:,.0f} ev/s, loop only {loop:,.0f} ev/s, "
              f"ratio {compiled / loop:.2f}")


if __name__ == "__main__":
    main()
