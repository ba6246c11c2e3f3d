"""What each command does, wired from the library: sources, views, and how they run."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import IO, Any

from ..transport.broker import safe_url
from ..config import Settings
from ..demo import DemoCluster
from ..dump.dumper import Dumper, dump_binding_keys
from ..filters import EventFilter
from ..proctitle import set_process_title
from ..runner import run_until_stopped
from ..snapshot import run_camera
from ..source import LiveSource, ReplaySource
from ..state import State

__all__ = ("run_dump", "run_demo", "run_camera", "start_camera", "run_monitor", "make_source",
           "start_exporter")

Status = Callable[[str], None]


def make_source(settings: Settings | None, replay: IO[str] | None = None, speed: float = 1.0,
                status: Status = lambda _: None, wakeup: bool = True,
                watchdog: float | None = None,
                routing_keys: Sequence[str] = ("#",)) -> LiveSource | ReplaySource:
    """Return the event source: the recording when ``replay`` is given, else the broker."""
    if replay is not None:
        return ReplaySource(replay, speed=speed)
    assert settings is not None
    return LiveSource(settings, wakeup=wakeup, status=status, watchdog=watchdog,
                      routing_keys=routing_keys)


def run_dump(settings: Settings | None, replay: IO[str] | None = None, speed: float = 1.0,
             json_lines: bool = False, record: IO[str] | None = None,
             watchdog: float | None = None, types: Sequence[str] = (), hostnames: Sequence[str] = (),
             tasks: Sequence[str] = (), status: Status = lambda _: None,
             out: Any = None) -> int:
    """Print every event (or those the filters keep) until stopped; return the exit status."""
    set_process_title("dump")
    dumper = Dumper(out=out, json_lines=json_lines, record=record,
                    event_filter=EventFilter(types=types, hostnames=hostnames, tasks=tasks))
    # the broker drops most unwanted types; the dumper's filter keeps exactly the wanted ones
    source = make_source(settings, replay, speed, status, watchdog=watchdog,
                         routing_keys=dump_binding_keys(types, tasks, json_lines,
                                                        recording=record is not None))
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


def start_camera(settings: Settings | None, camera_path: str, freq: float = 1.0,
                 maxrate: str | None = None, camera_opts: Sequence[str] = (),
                 replay: IO[str] | None = None, speed: float = 1.0, detach: bool = False,
                 daemon_options: Any = None, loglevel: str | None = None,
                 status: Status = print, watchdog: float | None = None) -> int:
    """Run the camera in the foreground, or as a daemon when ``detach`` (returns once it runs)."""
    import logging

    from ..daemon import PidFile, detach as daemonize
    from ..logsetup import setup_logging
    from ..snapshot import camera_options, load_camera
    camera_cls = load_camera(camera_path)
    options = camera_options(camera_cls, tuple(camera_opts))
    log = logging.getLogger("evtools.evcam")

    def warn(message: str) -> None:
        log.warning("%s", message.removeprefix("-> "))

    def run(started: Callable[[], None] | None = None) -> int:
        source = make_source(settings, replay, speed, status=warn, watchdog=watchdog)
        if isinstance(source, LiveSource):
            source.retry_startup = True
            # "running" means consuming, or at least retrying a broker that is down
            source.on_running, started = started, None
        return run_camera(camera_cls, source, freq=freq, maxrate=maxrate, options=options,
                          status=status, camera_name=camera_path, started=started)

    if not detach:
        if daemon_options is not None and daemon_options.pidfile:
            with PidFile(daemon_options.pidfile).acquire():
                return run()
        return run()
    if settings is not None and (daemon_options.uid is not None or daemon_options.gid is not None):
        _warm_up(settings)
    handler = setup_logging(loglevel or "INFO", daemon_options.logfile)
    log_stream = getattr(handler, "stream", None) if daemon_options.logfile else None
    preserve = [log_stream.fileno()] if log_stream is not None else []
    if log_stream is not None and (daemon_options.uid is not None or daemon_options.gid is not None):
        os.fchown(log_stream.fileno(), -1 if daemon_options.uid is None else daemon_options.uid,
                  -1 if daemon_options.gid is None else daemon_options.gid)
    import signal
    ignore = {signal.SIGTSTP: None, signal.SIGTTIN: None, signal.SIGTTOU: None}
    return daemonize(daemon_options, run, preserve, log_stream=log_stream, signal_map=ignore)


def _warm_up(settings: Settings) -> None:
    """Import what consuming needs while the interpreter's files are still readable.

    After ``--uid`` drops privileges, a Python installed under a private home (pyenv under
    /root) can no longer import anything: one short capture here pulls in the transport and
    its lazy imports (a broker that is down is fine, the daemon retries it).
    """
    import hashlib  # noqa: F401 - imported lazily by broker clients
    import hmac  # noqa: F401
    import secrets  # noqa: F401

    from ..transport.broker import connection_for
    from ..receiver import EventReceiver
    connection = connection_for(settings, connect_timeout=3)
    try:
        connection.ensure_connection(max_retries=1, interval_start=0, timeout=3)
        EventReceiver(connection, settings=settings).capture(limit=1, timeout=0.2, wakeup=False)
    except (TimeoutError, OSError, *connection.connection_errors, *connection.channel_errors):
        pass
    finally:
        connection.release()


def run_monitor(settings: Settings | None, replay: IO[str] | None = None, speed: float = 1.0) -> int:
    """Open the curses monitor on the broker's events (or a recording's)."""
    from ..runner import terminate_as_interrupt
    from ..top import run_top
    set_process_title("top")
    state = State()
    source = make_source(settings, replay, speed)
    if settings is not None:
        from ..transport.broker import connect
        connect(settings).release()  # an unreachable broker is one line, before the screen opens
    with terminate_as_interrupt():
        try:
            return run_top(state, source, settings)
        except KeyboardInterrupt:
            return 0


def start_exporter(settings: Settings, config: Any, serve: Any, detach: bool = False,
                   daemon_options: Any = None, loglevel: str | None = None,
                   status: Status = print) -> int:
    """Run ``evtools exporter`` in the foreground, or as a daemon when ``detach``."""
    from ..errors import MissingDependency
    try:
        from ..exporter.service import SCRAPE_SWITCH_INTERVAL, Exporter
    except ImportError as exc:
        raise MissingDependency(f"the exporter needs prometheus-client ({exc.name} is missing): "
                                "pip install 'evtools[prometheus]'") from None
    from ..daemon import PidFile, detach as daemonize
    from ..logsetup import setup_logging

    def run(started: Callable[[], None] | None = None) -> int:
        set_process_title("exporter", prefix="evtools exporter")
        # A scrape thread waits for the GIL behind the event thread at every socket call;
        # 1 ms hand-overs instead of 5 keep scrapes in milliseconds while events pour in.
        sys.setswitchinterval(SCRAPE_SWITCH_INTERVAL)
        exporter = Exporter(settings, config, serve)
        status(f"-> evtools exporter: serving http://{serve.host}:{exporter.server.port}/metrics, "
               f"events from {safe_url(settings.broker_url)}")
        return run_until_stopped(lambda: exporter.run(started), on_stop=exporter.stop)

    if not detach:
        if daemon_options is not None and daemon_options.pidfile:
            with PidFile(daemon_options.pidfile).acquire():
                return run()
        return run()
    if daemon_options.uid is not None or daemon_options.gid is not None:
        _warm_up(settings)
    handler = setup_logging(loglevel or "INFO", daemon_options.logfile)
    log_stream = getattr(handler, "stream", None) if daemon_options.logfile else None
    preserve = [log_stream.fileno()] if log_stream is not None else []
    import signal
    ignore = {signal.SIGTSTP: None, signal.SIGTTIN: None, signal.SIGTTOU: None}
    return daemonize(daemon_options, run, preserve, log_stream=log_stream, signal_map=ignore)
