"""The ``evtools`` command: a thin click layer that builds the pieces and runs them."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from .. import __version__
from ..config import Settings, parse_key_values, resolve_settings
from ..errors import EvtoolsError
from ..logsetup import setup_logging
from .options import (broker_options, camera_options, celery_exporter_options, daemon_options,
                      dump_options, exporter_extra_options, replay_options, watchdog_option)

#: Options shared by ``evtools`` and its subcommands; a subcommand's own value wins.
SHARED = ("broker", "app", "exchange", "queue_prefix", "queue_ttl", "queue_expires", "loglevel")

#: Repeatable options given to ``evtools`` and to its subcommand: both count, the latter last.
SHARED_REPEATABLE = ("transport_options", "ssl_options")


class EvtoolsGroup(click.Group):
    """Turns evtools' errors into one line on stderr and an exit status, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EvtoolsError as exc:
            click.echo(f"evtools: {exc}", err=True)
            ctx.exit(exc.exit_code)


def _shared(ctx: click.Context, given: dict[str, Any]) -> dict[str, Any]:
    parent = ctx.find_root().params
    shared = {key: given.get(key) if given.get(key) is not None else parent.get(key)
              for key in SHARED}
    for key in SHARED_REPEATABLE:
        shared[key] = tuple(parent.get(key) or ()) + tuple(given.get(key) or ())
    return shared


def _settings(shared: dict[str, Any], default_broker: str | None = None) -> Settings:
    return resolve_settings(shared["broker"] or default_broker, app=shared["app"],
                            transport_options=parse_key_values(
                                shared["transport_options"], "--broker-transport-option"),
                            ssl_options=parse_key_values(shared["ssl_options"],
                                                         "--broker-ssl-option"),
                            event_exchange=shared["exchange"],
                            event_queue_prefix=shared["queue_prefix"],
                            event_queue_ttl=shared["queue_ttl"],
                            event_queue_expires=shared["queue_expires"])


def _show_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """``--version``: the version, then which optional accelerators this installation uses."""
    if not value or ctx.resilient_parsing:
        return
    from ..transport.speedups import report

    click.echo(f"evtools, version {__version__}")
    for line in report():
        click.echo(line)
    ctx.exit()


def _status(message: str) -> None:
    click.echo(message, err=True)


@click.group(cls=EvtoolsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@broker_options
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_show_version,
              help="Show the version and the speedups in use, and exit.")
def main(**_: Any) -> None:
    """Watch a Celery cluster's event stream, without Celery.

    \b
    Try it with nothing installed:   evtools demo &  evtools events -b filesystem://
    Dump a real cluster's events:     evtools events --dump -b redis://localhost:6379/0
    """


@main.command(context_settings={"max_content_width": 100})
@broker_options
@dump_options
@replay_options
@camera_options
@daemon_options
@watchdog_option
@click.pass_context
def events(ctx: click.Context, dump: bool, json_lines: bool, record: Any, types: tuple[str, ...],
           hostnames: tuple[str, ...], tasks: tuple[str, ...], replay: Any, speed: float,
           camera: str | None, frequency: float, maxrate: str | None,
           camera_opts: tuple[str, ...], detach: bool, pidfile: str | None,
           logfile: str | None, uid: str | None, gid: str | None, umask: str | None,
           workdir: str | None, watchdog: float | None, **given: Any) -> None:
    """Watch events: --dump prints them, --camera photographs the state, else the monitor.

    \b
    Examples:
      evtools events --dump | grep task-failed
      evtools events --dump --json -t 'task-*' > incident.jsonl
      evtools events --replay incident.jsonl --speed 0 --dump
      evtools events --camera evtools.cameras.SQLiteCamera --frequency 2
    """
    shared = _shared(ctx, given)
    if (json_lines or record) and not dump:
        raise click.UsageError("--json and --record work with --dump")
    if (types or hostnames or tasks) and not dump:
        raise click.UsageError("--type, --hostname and --task filter the dump: add --dump")
    if detach and not camera:
        raise click.UsageError("--detach runs the camera as a daemon: add --camera")
    if dump and camera:
        raise click.UsageError("choose one mode: --dump or --camera")
    if watchdog and not (dump or camera):
        raise click.UsageError("--watchdog works with --dump or --camera")
    if not detach:
        setup_logging(shared["loglevel"] or ("INFO" if camera else None), logfile)
    if dump:
        from .commands import run_dump
        run_dump(_settings(shared) if replay is None else None, replay=replay, speed=speed,
                 json_lines=json_lines, record=record, watchdog=watchdog, types=types, hostnames=hostnames, tasks=tasks,
                 status=_status)
        return
    if camera:
        from .commands import start_camera
        from ..daemon import DaemonOptions, parse_gid, parse_uid, parse_umask
        uid_number = parse_uid(uid)
        options = DaemonOptions(pidfile=pidfile, logfile=logfile, uid=uid_number,
                                gid=parse_gid(gid, uid_number), umask=parse_umask(umask),
                                workdir=workdir or "/")
        if detach and not os.path.isdir(options.workdir):
            raise click.UsageError(f"--workdir {options.workdir!r} is not a directory")
        start_camera(_settings(shared) if replay is None else None, camera, freq=frequency,
                     maxrate=maxrate, camera_opts=camera_opts, replay=replay, speed=speed,
                     detach=detach, daemon_options=options, loglevel=shared["loglevel"],
                     watchdog=watchdog,
                     status=_status)
        return
    from .commands import run_monitor
    run_monitor(_settings(shared) if replay is None else None, replay=replay, speed=speed)


@main.command()
@broker_options
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), default=4.0,
              show_default=True, help="New tasks per second, on average.")
@click.option("--workers", type=click.IntRange(min=1, max=64), default=4, show_default=True,
              help="How many workers to simulate.")
@click.option("--duration", type=click.FloatRange(min=0), default=0, show_default=True,
              help="Stop after this many seconds (0: run until Ctrl-C).")
@click.option("--seed", type=int, default=None, help="Random seed, for a repeatable run.")
@click.pass_context
def demo(ctx: click.Context, rate: float, workers: int, duration: float, seed: int | None,
         **given: Any) -> None:
    """Publish a simulated cluster's events, so evtools can be tried without Celery or a server.

    By default it publishes to the embedded broker (filesystem:// in a per-user folder),
    never to $CELERY_BROKER_URL: watch it with  evtools events -b filesystem://
    """
    shared = _shared(ctx, given)
    setup_logging(shared["loglevel"])
    from .commands import run_demo
    run_demo(_settings(shared, default_broker="filesystem://"), rate=rate, workers=workers,
             duration=duration, seed=seed,
             status=_status)


@main.command(context_settings={"max_content_width": 100})
@click.argument("command", metavar="COMMAND",
                type=click.Choice(["ping", "enable_events", "disable_events", "heartbeat",
                                   "revoke", "rate_limit"]))
@click.argument("args", metavar="[ARGS]...", nargs=-1)
@click.option("-d", "--destination", "destinations", metavar="HOSTNAME", multiple=True,
              help="Only this worker (w1@host); repeatable or comma-separated. "
                   "Default: every worker.")
@click.option("-t", "--timeout", type=click.FloatRange(min=0, min_open=True), default=1.0,
              show_default=True, metavar="SECONDS",
              help="How long to wait for the next reply before giving up.")
@click.option("-j", "--json", "json_lines", is_flag=True,
              help='One JSON object per reply: {"hostname": ..., "reply": {"ok": ...}}.')
@click.option("--terminate", is_flag=True,
              help="With revoke: also kill the task if a worker is running it.")
@click.option("-s", "--signal", "signal_name", metavar="SIG", default=None,
              help="With revoke --terminate: the signal to kill with (TERM, KILL, ...; "
                   "default TERM).")
@broker_options
@click.pass_context
def control(ctx: click.Context, command: str, args: tuple[str, ...],
            destinations: tuple[str, ...], timeout: float, json_lines: bool, terminate: bool,
            signal_name: str | None, **given: Any) -> None:
    """Send a remote control COMMAND to Celery workers and print their replies.

    \b
    COMMAND and its ARGS, with Celery's names:
      ping                       each live worker answers pong
      enable_events              turn task events on, as if started with -E
      disable_events             turn task events off
      heartbeat                  each worker sends a worker-heartbeat event now (no reply)
      revoke TASK_ID...          revoke tasks; --terminate also kills a running one
      rate_limit TASK_NAME RATE  at most RATE tasks of that name: 10/s, 10/m, 10/h; 0: no limit

    Each reply is one line, "-> HOSTNAME: OK TEXT" (or ERROR), as celery control says it.
    When no worker replies within --timeout, "Error: No nodes replied within time constraint"
    goes to stderr and the status is 1 (also when a worker replies with an error).

    \b
    Examples:
      evtools control ping
      evtools control ping -d w1@host -d w2@host
      evtools control enable_events -b redis://localhost:6379/0
      evtools control revoke 7c1f2a3e-... --terminate --signal KILL
      evtools control rate_limit proj.tasks.add 10/m
      evtools control ping --json | jq -r .hostname
    """
    shared = _shared(ctx, given)
    setup_logging(shared["loglevel"])
    from ..controlview import run_control
    ctx.exit(run_control(_settings(shared), command, args, destination=destinations,
                         timeout=timeout, json_lines=json_lines, terminate=terminate,
                         signal=signal_name, out=click.echo, status=_status))


@main.command(context_settings={"max_content_width": 100})
@celery_exporter_options
@exporter_extra_options
@broker_options
@daemon_options
@click.pass_context
def exporter(ctx: click.Context, **params: Any) -> None:
    """Serve Prometheus metrics from the event stream: a drop-in celery-exporter.

    Serves /metrics (Prometheus text or OpenMetrics), /health and / on --host:--port, with
    celery-exporter's metric names, labels, flags and CE_* environment variables, so its
    dashboards, alerts and recording rules work unchanged. Queue lengths and worker counts
    are measured in the background: a scrape never waits for the broker.

    \b
    Examples:
      evtools exporter --broker-url redis://localhost:6379/0
      CE_BROKER_URL=amqp://guest@rabbit// evtools exporter --port 9808 -Q celery,priority
      evtools exporter -b redis:// --max-series 5000 --task-deny 'celery.*'
      evtools exporter -b redis:// --type 'task-*' --port 9808    # two exporters split
      evtools exporter -b redis:// --type 'worker-*' --port 9809  # one cluster's stream
    """
    from ..daemon import DaemonOptions, parse_gid, parse_uid, parse_umask
    from ..exporter.config import ExporterConfig
    from ..exporter.service import ServeOptions
    given = {key: params.pop(key) for key in SHARED + SHARED_REPEATABLE if key in params}
    if params["broker_url"]:
        given["broker"] = params["broker_url"]
    for key, variable in (("transport_options", "CE_BROKER_TRANSPORT_OPTION"),
                          ("ssl_options", "CE_BROKER_SSL_OPTION")):
        # celery-exporter's variables: KEY=VALUE items separated by spaces, flags after them
        given[key] = tuple(os.environ.get(variable, "").split()) + tuple(given.get(key) or ())
    shared = _shared(ctx, given)
    if params["accept_content"] and set(_comma(params["accept_content"])) - {"json", "application/json"}:
        _status("-> evtools exporter: only JSON events are decoded; others are counted as dropped")
    detach = params["detach"]
    if not detach:
        setup_logging(params["log_level"], params["logfile"])
    settings = _settings(shared)
    config = ExporterConfig(
        buckets=params["buckets"], queue_wait_buckets=params["queue_wait_buckets"],
        worker_timeout=params["worker_timeout"],
        purge_offline_after=params["purge_offline_worker_metrics"],
        generic_hostname_task_sent=params["generic_hostname_task_sent_metric"],
        generic_hostname_worker_task=params["generic_hostname_worker_task_metric"],
        default_queue_name=params["default_queue_name"], metric_prefix=params["metric_prefix"],
        static_labels=tuple(params["static_label"].items()), queues=params["queues"],
        task_allow=params["task_allow"], task_deny=params["task_deny"],
        hostname_rewrite=params["hostname_rewrite"], max_series_per_family=params["max_series"],
        types=params["types"])
    serve = ServeOptions(host=params["host"], port=params["port"],
                         health_max_silence=params["health_max_silence"],
                         refresh_interval=params["refresh_interval"],
                         max_staleness=params["max_staleness"])
    uid_number = parse_uid(params["uid"])
    options = DaemonOptions(pidfile=params["pidfile"], logfile=params["logfile"], uid=uid_number,
                            gid=parse_gid(params["gid"], uid_number),
                            umask=parse_umask(params["umask"]), workdir=params["workdir"] or "/")
    from .commands import start_exporter
    start_exporter(settings, config, serve, detach=detach, daemon_options=options,
                   loglevel=params["log_level"], status=_status)


def _comma(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
