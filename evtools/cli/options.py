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
                 help="With --dump: only events whose type matches (task-fail*); the broker "
                      "is asked for the matching types only (docs/brokers.md). Repeatable."),
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


# -- evtools exporter: celery-exporter's flags, with its CE_* environment variables ----------

def _comma_list(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


def _buckets(ctx: click.Context, param: click.Parameter, value: str) -> tuple[float, ...]:
    try:
        bounds = tuple(float(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r}: give numbers separated by commas") from None
    if not bounds:
        raise click.BadParameter("give at least one bucket bound")
    return bounds


def parse_option_value(value: str) -> Any:
    """A KEY=VALUE option's value: JSON when it parses (5, true, {"a": 1}), else the text."""
    import json
    try:
        return json.loads(value)
    except ValueError:
        return value


def _key_values(ctx: click.Context, param: click.Parameter,
                values: tuple[str, ...]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE")
        result[key.strip()] = (value if param.name == "static_label"
                               else parse_option_value(value))
    return result


def _ce(name: str) -> str:
    return f"CE_{name.upper()}"


#: Every flag celery-exporter has, under its name and its CE_* environment variable.
celery_exporter_options = _apply([
    click.option("--broker-url", envvar=_ce("broker_url"), metavar="URL", default=None,
                 help="The broker, e.g. redis://1.2.3.4:6379/0 (same as -b). [env: CE_BROKER_URL]"),
    click.option("--accept-content", envvar=_ce("accept_content"), metavar="LIST", default=None,
                 help="Accepted content types, e.g. json. evtools decodes JSON events only; "
                      "others are counted as dropped."),
    click.option("--retry-interval", envvar=_ce("retry_interval"), type=click.FloatRange(min=0),
                 default=0, show_default=True, metavar="SECONDS",
                 help="Accepted for compatibility: evtools always reconnects, with backoff."),
    click.option("--host", envvar=_ce("host"), default="0.0.0.0", show_default=True,
                 help="Address to listen on."),
    click.option("--port", envvar=_ce("port"), type=click.IntRange(0, 65535), default=9808,
                 show_default=True, help="Port to listen on (0: any free port)."),
    click.option("--buckets", envvar=_ce("buckets"), callback=_buckets, metavar="LIST",
                 default="0.005,0.01,0.025,0.05,0.075,0.1,0.25,0.5,0.75,1.0,2.5,5.0,7.5,10.0",
                 help="Bucket bounds of celery_task_runtime, in seconds. Default: "
                      "prometheus_client's, 0.005, 0.01, 0.025, ... 5.0, 7.5, 10.0."),
    click.option("--queue-wait-buckets", envvar=_ce("queue_wait_buckets"), callback=_buckets,
                 metavar="LIST", default="0.05,0.1,0.25,0.5,1,2.5,5,10,30,60,120,300,600,1800",
                 help="Bucket bounds of celery_task_queue_wait_time, in seconds (needs "
                      "task_send_sent_event on the clients). Default: 0.05, 0.1, 0.25, 0.5, 1, "
                      "2.5, 5, 10, 30, 60, 120, 300, 600, 1800."),
    click.option("--log-level", envvar=_ce("log_level"), type=LogLevel(), default="INFO",
                 show_default=True, help="Logging level."),
    click.option("--worker-timeout", envvar=_ce("worker_timeout"), type=click.FloatRange(min=0),
                 default=300, show_default=True, metavar="SECONDS",
                 help="A worker without a heartbeat for this long is down (0: never)."),
    click.option("--purge-offline-worker-metrics", envvar=_ce("purge_offline_worker_metrics"),
                 type=click.FloatRange(min=0), default=600, show_default=True, metavar="SECONDS",
                 help="Remove a silent worker's series after this long (0: never)."),
    click.option("--generic-hostname-task-sent-metric",
                 envvar=_ce("generic_hostname_task_sent_metric"), is_flag=True,
                 help='Label celery_task_sent_total with hostname="generic", not the client.'),
    click.option("--generic-hostname-worker-task-metric",
                 envvar=_ce("generic_hostname_worker_task_metric"), is_flag=True,
                 help='Label the other task counters and histograms with hostname="generic".'),
    click.option("-Q", "--queues", envvar=_ce("queues"), callback=_comma_list, metavar="LIST",
                 default=None,
                 help="Comma-separated queues whose gauges exist before a worker consumes them."),
    click.option("--metric-prefix", envvar=_ce("metric_prefix"), default="celery_",
                 show_default=True, help="Prefix of celery-exporter's metric names."),
    click.option("--default-queue-name", envvar=_ce("default_queue_name"), default="celery",
                 show_default=True,
                 help="queue_name of tasks whose task-sent was not seen (task_default_queue)."),
    click.option("--static-label", envvar=_ce("static_label"), metavar="NAME=VALUE",
                 multiple=True, callback=_key_values,
                 help="A label added to every celery_* series. Repeatable."),
])

#: What evtools' exporter adds: health, cardinality controls, splitting a stream.
exporter_extra_options = _apply([
    click.option("--health-max-silence", envvar="EVTOOLS_HEALTH_MAX_SILENCE",
                 type=click.FloatRange(min=0), default=0, metavar="SECONDS",
                 help="/health fails when no event arrived for this long (0: only the broker "
                      "connection counts)."),
    click.option("--refresh-interval", type=click.FloatRange(min=0.1), default=10.0,
                 show_default=True, metavar="SECONDS",
                 help="Seconds between two measurements of queue lengths and worker counts "
                      "(in the background: scrapes never wait for the broker)."),
    click.option("--max-staleness", type=click.FloatRange(min=0), default=2.0,
                 show_default=True, metavar="SECONDS",
                 help="The oldest celery_* samples a scrape may serve: they are rendered ahead "
                      "in the background (every half of this while events change them), so "
                      "scrapes answer from memory. 0: render at every scrape."),
    click.option("--task-allow", "task_allow", metavar="GLOB", multiple=True,
                 help="Only count tasks whose name matches (proj.billing.*). Repeatable."),
    click.option("--task-deny", "task_deny", metavar="GLOB", multiple=True,
                 help="Never count tasks whose name matches. Repeatable."),
    click.option("--hostname-rewrite", nargs=2, metavar="REGEX REPLACEMENT", default=None,
                 help="Rewrite every hostname label with re.sub, e.g. "
                      "'^(worker)-[a-z0-9]+$' '\\1' folds pod names."),
    click.option("--max-series", "max_series", type=click.IntRange(min=0), default=0,
                 metavar="N",
                 help="At most N series per family; further label sets go to one series "
                      'labelled "__overflow__" and are counted (0: no cap).'),
    click.option("--type", "types", metavar="GLOB", multiple=True,
                 help="Count only events of these types (task-succeeded, task-f*), to split "
                      "one cluster's stream across exporters; the broker is asked for their "
                      "groups only (task-*, worker-*). Repeatable."),
])
