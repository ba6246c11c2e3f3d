"""The dump as users run it: a ``--dump`` process writing to a file while events are published.

The dump starts first (its queue has a random name, so nothing can wait for it); once it
prints a probe heartbeat it is consuming, and the publisher starts. The dump has drained
when its file holds every event line, or has not grown for a while after the publisher
finished.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .impls import dump_command
from .publish import publish_probe

__all__ = ("measure_dump", "EventLines")

PROBE_HOST = "probe@bench"

#: An event line starts with the sender's hostname and the time in brackets; continuation
#: lines (Celery prints a traceback's newlines as they are) do not.
EVENT_LINE = re.compile(rb"^[^\s@\[]+@[^\s\[]+ \[", re.MULTILINE)
PROBE_LINE = re.compile(rb"^" + re.escape(PROBE_HOST.encode()) + rb" \[", re.MULTILINE)

#: The dump has drained once its output did not grow for this long after the publisher ended.
QUIET = 5.0

READY_TIMEOUT = 60.0
POLL = 0.02


class EventLines:
    """Follows a growing dump file: event lines seen (probes apart) and when the last one came."""

    def __init__(self, path: Path) -> None:
        self.file = path.open("rb")
        self.tail = b""
        self.events = 0
        self.probes = 0
        self.last_growth = time.time()

    def poll(self) -> bool:
        """Read what was added; return whether anything was."""
        chunk = self.file.read()
        if not chunk:
            return False
        self.last_growth = time.time()
        data = self.tail + chunk
        cut = data.rfind(b"\n") + 1
        complete, self.tail = data[:cut], data[cut:]
        probes = len(PROBE_LINE.findall(complete))
        self.probes += probes
        self.events += len(EVENT_LINE.findall(complete)) - probes
        return True

    def close(self) -> None:
        """Stop following."""
        self.file.close()


def _wait_ready(url: str, lines: EventLines, dump: subprocess.Popen[bytes]) -> float:
    """Publish probe heartbeats until the dump prints one; return how long that took."""
    began = time.monotonic()
    while lines.probes == 0:
        if dump.poll() is not None:
            raise RuntimeError(f"the dump exited with status {dump.returncode} before consuming")
        if time.monotonic() - began > READY_TIMEOUT:
            raise TimeoutError("the dump did not start consuming")
        publish_probe(url, PROBE_HOST)
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline and lines.probes == 0:
            lines.poll()
            time.sleep(POLL)
    return time.monotonic() - began


def _follow(lines: EventLines, publisher: subprocess.Popen[str], expected: int) -> None:
    """Poll the dump's output until it holds ``expected`` events or went quiet after publishing."""
    while lines.events < expected:
        lines.poll()
        if publisher.poll() is not None and time.time() - lines.last_growth > QUIET:
            return
        time.sleep(POLL)


def _stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _command(impl: str, url: str, profile: Path | None) -> list[str]:
    command = dump_command(impl, url)
    if profile is None:
        return command
    assert command[1] == "-m"
    return [command[0], "-m", "cProfile", "-o", str(profile), *command[1:]]


def measure_dump(impl: str, url: str, events: int, workdir: Path, cache: Path,
                 rate: float | None = None, profile: Path | None = None) -> dict[str, Any]:
    """Run ``impl``'s dump while ``events`` single events are published (at ``rate``, or flat out).

    ``profile`` runs the dump under cProfile, writing its stats there.
    """
    out_path, err_path = workdir / f"dump-{impl}.out", workdir / f"dump-{impl}.err"
    publish = [sys.executable, "-m", "bench.publish", url, "--events", str(events), "--cache", str(cache)]
    publish += ["--rate", str(rate)] if rate else []
    with out_path.open("wb") as out, err_path.open("wb") as err:
        dump = subprocess.Popen(_command(impl, url, profile), stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    lines = EventLines(out_path)
    try:
        ready_seconds = _wait_ready(url, lines, dump)
        publisher = subprocess.Popen(publish, stdout=subprocess.PIPE, text=True)
        _follow(lines, publisher, events)
        published = json.loads(publisher.communicate()[0].strip().splitlines()[-1])
    finally:
        _stop(dump)
        lines.poll()
        lines.close()
    seconds = lines.last_growth - published["started_at"]
    reconnects = err_path.read_bytes().count(b"Connection lost") + out_path.read_bytes().count(b"Connection lost")
    return {"printed": lines.events, "published": published["events"], "seconds": seconds,
            "rate": lines.events / seconds if seconds > 0 else 0.0,
            "loss": 1 - lines.events / published["events"], "publisher_rate": published["rate"],
            "ready_seconds": ready_seconds, "reconnects": reconnects}
