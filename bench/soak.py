"""Soak: 10,000 events/s through a real broker into the monitor (in a pseudo-terminal) and a
camera, for ten minutes, with both processes' RSS sampled every few seconds.

    python -m bench.soak [--seconds 600] [--rate 10000] [--broker rabbitmq|redis] [--out FILE]

Writes a Markdown report (the RSS curve, events published and seen) to ``--out``
(default ``bench/SOAK.md``). Run by ``make soak``; not part of CI.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from kombu import Connection, Producer

from evtools.event import get_exchange
from tests.integration.terminal import Terminal
from tests.servers import RabbitServer, RedisServer, free_port

from .stream import task_events

BATCH = 10  # events per task.multi message, as prefork workers batch them
SAMPLE_EVERY = 5.0


def rss_mib(pid: int) -> float:
    """The resident set size of a process, in MiB (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except FileNotFoundError:
        return 0.0


def publish_paced(url: str, rate: float, seconds: float, counter: list[int],
                  stop: threading.Event) -> None:
    """Publish ``rate`` events a second, in lists of BATCH, until ``seconds`` pass."""
    events = task_events(int(rate * seconds / 4) + 1000, seed=5)
    with Connection(url) as connection:
        producer = Producer(connection.default_channel, exchange=get_exchange(connection))
        started = time.monotonic()
        while not stop.is_set() and time.monotonic() - started < seconds:
            due = started + counter[0] / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            batch = [next(events) for _ in range(BATCH)]
            for event in batch:
                event["timestamp"] = time.time()
                event.pop("local_received", None)
            producer.publish(batch, routing_key="task.multi", serializer="json")
            counter[0] += len(batch)


def monitor_pid(term: Terminal) -> int:
    """The evtools process running in the terminal's pane."""
    shell = int(term._tmux("list-panes", "-t", "main", "-F", "#{pane_pid}").split()[0])
    for _ in range(50):
        found = subprocess.run(["pgrep", "-P", str(shell), "-f", "evtools"], capture_output=True,
                               text=True).stdout.split()
        if found:
            return int(found[0])
        time.sleep(0.2)
    raise RuntimeError("the monitor did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--rate", type=float, default=10_000.0)
    parser.add_argument("--broker", choices=("rabbitmq", "redis"), default="rabbitmq")
    parser.add_argument("--out", default="bench/SOAK.md")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="evtools-soak-"))
    server = (RabbitServer if args.broker == "rabbitmq" else RedisServer)(free_port(), workdir)
    server.start()
    term = camera = None
    stop = threading.Event()
    counter = [0]
    samples: list[tuple[float, float, float, int]] = []
    try:
        term = Terminal("events", "-b", server.url, width=160, height=50)
        camera = subprocess.Popen([sys.executable, "-m", "evtools", "events", "-b", server.url,
                                   "--camera", "evtools.cameras.SQLiteCamera", "--camera-opt",
                                   f"path={workdir / 'soak.sqlite'}", "--frequency", "2"],
                                  stdout=subprocess.DEVNULL, stderr=open(workdir / "cam.log", "w"))
        top = monitor_pid(term)
        time.sleep(3)
        publisher = threading.Thread(target=publish_paced,
                                     args=(server.url, args.rate, args.seconds, counter, stop))
        started = time.monotonic()
        publisher.start()
        while publisher.is_alive():
            samples.append((time.monotonic() - started, rss_mib(top), rss_mib(camera.pid),
                            counter[0]))
            publisher.join(SAMPLE_EVERY)
        time.sleep(5)
        screen = term.screen()
        seen = re.search(r"events: (\d+)", screen)
        samples.append((time.monotonic() - started, rss_mib(top), rss_mib(camera.pid), counter[0]))
        report(args, samples, int(seen.group(1)) if seen else None, screen)
    finally:
        stop.set()
        if term is not None:
            term.close()
        if camera is not None:
            camera.terminate()
            camera.wait(30)
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def report(args: argparse.Namespace, samples: list[tuple[float, float, float, int]],
           seen: int | None, screen: str) -> None:
    """Write the RSS curve and the counts as Markdown."""
    published = samples[-1][3]
    lines = [
        "# Soak run", "",
        f"{args.rate:,.0f} events/s offered for {args.seconds:.0f} s through a private "
        f"{args.broker} into `evtools events` (the monitor, in a tmux pseudo-terminal) and "
        "`evtools events --camera evtools.cameras.SQLiteCamera --frequency 2`.", "",
        f"Machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}; run on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        f"Command: `python -m bench.soak --seconds {args.seconds:.0f} --rate {args.rate:.0f} "
        f"--broker {args.broker}`", "",
        f"Events published: {published:,}; events the monitor counted: "
        f"{seen if seen is not None else 'unknown'}.", "",
        "| seconds | monitor RSS (MiB) | camera RSS (MiB) | events published |",
        "|---:|---:|---:|---:|",
    ]
    lines += [f"| {t:.0f} | {top:.1f} | {cam:.1f} | {n:,} |" for t, top, cam, n in samples]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
