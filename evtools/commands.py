"""What each command does, wired from the library: sources, views, and how they run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import IO, Any

from .broker import safe_url
from .config import Settings
from .demo import DemoCluster
from .dumper import Dumper
from .filters import EventFilter
from .proctitle import set_process_title
from .runner import run_until_stopped
from .source import LiveSource, ReplaySource

__all__ = ("run_dump", "run_demo", "make_source")

Status = Callable[[str], None]


def make_source(settings: Settings | None, replay: IO[str] | None = None, speed: float = 1.0,
                status: Status = lambda _: None, wakeup: bool = True) -> LiveSource | ReplaySource:
    """Return the event source: the recording when ``replay`` is given, else the broker."""
    if replay is not None:
        return ReplaySource(replay, speed=speed)
    assert settings is not None
    return LiveSource(settings, wakeup=wakeup, status=status)


def run_dump(settings: Settings | None, replay: IO[str] | None = None, speed: float = 1.0,
             json_lines: bool = False, record: IO[str] | None = None, types: Sequence[str] = (), hostnames: Sequence[str] = (),
             tasks: Sequence[str] = (), status: Status = lambda _: None,
             out: Any = None) -> int:
    """Print every event (or those the filters keep) until stopped; return the exit status."""
    set_process_title("dump")
    dumper = Dumper(out=out, json_lines=json_lines, record=record,
                    event_filter=EventFilter(types=types, hostnames=hostnames, tasks=tasks))
    source = make_source(settings, replay, speed, status)
    status("-> evdump: starting capture...")
    return run_until_stopped(lambda: source.run(dumper.on_event), on_stop=source.stop)


def run_demo(settings: Settings, rate: float = 4.0, workers: int = 4, duration: float = 0.0,
             seed: int | None = None, status: Status = lambda _: None) -> int:
    """Publish the simulated cluster's events until stopped (or for ``duration`` seconds)."""
    set_process_title("demo")
    cluster = DemoCluster(settings, rate=rate, workers=workers, seed=seed)
    status(f"-> evtools demo: {workers} simulated workers, ~{rate:g} tasks/s, publishing to "
           f"{safe_url(settings.broker_url)}. Watch with: evtools events -b "
           f"{safe_url(settings.broker_url)}   (Ctrl-C stops)")
    return run_until_stopped(lambda: cluster.run(duration or None), on_stop=cluster.stop)
