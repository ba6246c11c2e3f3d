"""The command-line options, declared apart from the commands that act on them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

__all__ = ("broker_options", "dump_options", "watchdog_option", "camera_options", "daemon_options", "replay_options",
           "LOG_LEVELS")

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "FATAL")

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def _apply(options: list[Decorator]) -> Decorator:
    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            command = option(command)
        return command
    return decorate


class LogLevel(click.Choice):
    """A log level name, any case (``info``, ``INFO``)."""

    def __init__(self) -> None:
        super().__init__(LOG_LEVELS, case_sensitive=False)


#: Where events come from; accepted by ``evtools`` itself and by each subcommand.
broker_options = _apply([
    click.option("-b", "--broker", metavar="URL", default=None,
                 help="Broker URL: amqp://user:pass@host:5672//, redis://host:6379/0, or "
                      "filesystem:// for the embedded demo broker. Default: $EVTOOLS_BROKER_URL, "
                      "$CELERY_BROKER_URL, the -A app's broker_url, then amqp://localhost."),
    click.option("-A", "--app", metavar="APP", default=None,
                 help="A Celery app (proj, proj.celery:app) to read broker_url and event_* "
                      "settings from. Celery is imported only then."),
    click.option("--exchange", metavar="NAME", default=None,
                 help="Event exchange name (Celery's event_exchange, default celeryev)."),
    click.option("--queue-prefix", metavar="PREFIX", default=None,
                 help="Prefix of the receiver's queue name (event_queue_prefix, default celeryev)."),
    click.option("--queue-ttl", metavar="SECONDS", type=float, default=None,
                 help="Message TTL of the receiver's queue (event_queue_ttl, default 5)."),
    click.option("--queue-expires", metavar="SECONDS", type=float, default=None,
                 help="Expiry of the receiver's queue once unused (event_queue_expires, default 60)."),
    click.option("--broker-transport-option", "transport_options", metavar="KEY=VALUE",
                 multiple=True,
                 help="A kombu transport option (Celery's broker_transport_options); repeatable. "
                      "VALUE is read as JSON when it parses: master_name=mymaster, "
                      "sentinel_kwargs='{\"password\": \"x\"}'. Also "
                      "$EVTOOLS_BROKER_TRANSPORT_OPTIONS (a JSON object or KEY=VALUE;...)."),
    click.option("--broker-ssl-option", "ssl_options", metavar="KEY=VALUE", multiple=True,
                 help="A TLS option (Celery's broker_use_ssl); repeatable: ssl_cert_reqs=required, "
                      "ssl_ca_certs=ca.pem, ssl_certfile=client.pem, ssl_keyfile=client.key. "
                      "Also $EVTOOLS_BROKER_SSL_OPTIONS."),
    click.option("-l", "--loglevel", type=LogLevel(), default=None,
                 help="Logging level: DEBUG, INFO, WARNING (default), ERROR, CRITICAL."),
])

dump_options = _apply([
    click.option("-d", "--dump", is_flag=True,
                 help="Dump events to stdout, one line each (-d is --dump; --detach is -D)."),
    click.option("--json", "json_lines", is_flag=True,
                 help="With --dump: one JSON object per line, every field (a recording, for jq "
                      "or --replay)."),
    click.option("--record", metavar="FILE", type=click.File("a", encoding="utf-8", lazy=False),
                 default=None,
                 help="With --dump: also append every event captured to FILE as JSON lines, "
                      "a recording for --replay."),
    click.option("-t", "--type", "types", metavar="GLOB", multiple=True,
                 help="With --dump: only events whose type matches (task-fail*). Repeatable."),
    click.option("--hostname", "hostnames", metavar="GLOB", multiple=True,
                 help="With --dump: only events sent by matching hosts (worker1@*). Repeatable."),
    click.option("--task", "tasks", metavar="NAME-GLOB", multiple=True,
                 help="With --dump: only events of tasks whose name matches (proj.*). Repeatable."),
])

watchdog_option = click.option(
    "--watchdog", metavar="SECONDS", type=click.FloatRange(min=0, min_open=True), default=None,
    help="With --dump or --camera: exit with status 3 when no event at all arrived for this "
         "long, so a supervisor can restart a stuck monitor.")

replay_options = _apply([
    click.option("--replay", metavar="FILE", type=click.File("r", encoding="utf-8"), default=None,
                 help="Read events from a recording made with --dump --json (- for stdin) "
                      "instead of the broker."),
    click.option("--speed", type=click.FloatRange(min=0), default=1.0, show_default=True,
                 help="With --replay: pace multiplier; 0 replays as fast as possible."),
])

camera_options = _apply([
    click.option("-c", "--camera", metavar="CLASS", default=None,
                 help="Take snapshots with this camera class (dotted path to a Polaroid subclass)."),
    click.option("-F", "--frequency", "--freq", type=click.FloatRange(min=0, min_open=True),
                 default=1.0, show_default=True, help="With --camera: seconds between snapshots."),
    click.option("-r", "--maxrate", metavar="RATE", default=None,
                 help="With --camera: at most this many snapshots (10/m, 2/s, 100/h)."),
    click.option("--camera-opt", "camera_opts", metavar="KEY=VALUE", multiple=True,
                 help="With --camera: an option for the camera. Repeatable."),
])

daemon_options = _apply([
    click.option("-D", "--detach", is_flag=True,
                 help="With --camera: run as a daemon in the background (-D; -d is --dump)."),
    click.option("--pidfile", metavar="FILE", default=None, help="Daemon pid file (locked)."),
    click.option("-f", "--logfile", metavar="FILE", default=None, help="Log to this file."),
    click.option("--uid", metavar="USER", default=None, help="Daemon: drop privileges to this user."),
    click.option("--gid", metavar="GROUP", default=None, help="Daemon: drop privileges to this group."),
    click.option("--umask", metavar="OCTAL", default=None, help="Daemon: file creation mask (0)."),
    click.option("--workdir", metavar="DIR", default=None, help="Daemon: working directory (/)."),
])
