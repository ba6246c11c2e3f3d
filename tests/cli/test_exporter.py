"""`evtools exporter` on the command line: celery-exporter's flags and CE_* variables, one-line errors."""

from __future__ import annotations

import socket
import urllib.request

import pytest
from click.testing import CliRunner

from evtools.cli import main
from tests.helpers import wait_for
from tests.integration.cli_process import EvtoolsProcess
from tests.servers import free_port

CELERY_EXPORTER_FLAGS = (
    "--broker-url", "--broker-transport-option", "--broker-ssl-option", "--accept-content",
    "--retry-interval", "--host", "--port", "--buckets", "--queue-wait-buckets", "--log-level",
    "--worker-timeout", "--purge-offline-worker-metrics", "--generic-hostname-task-sent-metric",
    "--generic-hostname-worker-task-metric", "--queues", "--metric-prefix",
    "--default-queue-name", "--static-label")


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_help_lists_every_celery_exporter_flag_and_evtools_own() -> None:
    help_text = run("exporter", "--help").output
    for flag in (*CELERY_EXPORTER_FLAGS, "-Q", "--health-max-silence", "--max-staleness", "--task-allow",
                 "--task-deny", "--hostname-rewrite", "--max-series", "--type", "--detach"):
        assert flag in help_text, flag


@pytest.mark.parametrize("args, env, message", [
    (("--buckets", "1,x"), {}, "give numbers separated by commas"),
    ((), {"CE_QUEUE_WAIT_BUCKETS": "fast"}, "give numbers separated by commas"),
    (("--static-label", "novalue"), {}, "expected KEY=VALUE"),
    (("--static-label", "name=x"), {}, "--static-label 'name': not a label name"),
    (("--broker-transport-option", "=1"), {}, "expected KEY=VALUE"),
    (("--broker-ssl-option", "cert_reqs=sometimes"), {}, "expected none, optional or required"),
    ((), {"CE_BROKER_TRANSPORT_OPTION": "novalue"}, "expected KEY=VALUE"),
    (("--hostname-rewrite", "(", "x"), {}, "--hostname-rewrite '('"),
    (("--metric-prefix", "9bad"), {}, "--metric-prefix '9bad'"),
])
def test_user_errors_are_one_line(args: tuple, env: dict, message: str) -> None:
    result = run("exporter", "--broker-url", "redis://127.0.0.1:1/0", *args, env=env)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert message in result.output and "Traceback" not in result.output
    assert len([line for line in lines if "rror" in line or line.startswith("evtools:")]) == 1


def test_a_busy_port_is_one_line() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = run("exporter", "--broker-url", "redis://127.0.0.1:1/0", "--host", "127.0.0.1",
                     env={"CE_PORT": str(port)})
    assert result.exit_code == 2
    assert f"evtools: cannot listen on 127.0.0.1:{port}" in result.output
    assert "Traceback" not in result.output


def test_ce_environment_variables_configure_a_running_exporter(redis_url: str) -> None:
    port = free_port()
    exporter = EvtoolsProcess("exporter", env={
        "CE_BROKER_URL": redis_url, "CE_HOST": "127.0.0.1", "CE_PORT": str(port),
        "CE_QUEUES": "alpha,beta", "CE_STATIC_LABEL": "cluster=eu team=core",
        "CE_METRIC_PREFIX": "ce_", "CE_LOG_LEVEL": "info",
        "CE_BROKER_TRANSPORT_OPTION": "visibility_timeout=60"})
    try:
        exporter.wait_ready(timeout=60)
        url = f"http://127.0.0.1:{port}/metrics"

        def body() -> str:
            with urllib.request.urlopen(url, timeout=5) as reply:
                return reply.read().decode()
        assert wait_for(lambda: 'ce_queue_length{cluster="eu",queue_name="beta",team="core"} 0.0'
                        in body(), timeout=30), exporter.report()
        assert "celery_" not in "".join(line for line in body().splitlines()
                                        if not line.startswith("#"))
    finally:
        assert exporter.terminate() == 0, exporter.report()


def test_detached_exporter_serves_under_its_process_title_and_stops_on_sigterm(redis_url: str,
                                                                               tmp_path) -> None:
    import os
    import signal
    import subprocess
    import sys
    port, pidfile = free_port(), tmp_path / "exporter.pid"
    done = subprocess.run([sys.executable, "-m", "evtools", "exporter", "--broker-url", redis_url,
                           "--host", "127.0.0.1", "--port", str(port), "--detach",
                           "--pidfile", str(pidfile), "--logfile", str(tmp_path / "log"),
                           "--workdir", str(tmp_path)],
                          capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr
    pid = int(pidfile.read_text())
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            assert cmdline.read().startswith(b"evtools exporter --broker-url")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as reply:
            assert reply.status == 200
    finally:
        os.kill(pid, signal.SIGTERM)
    assert wait_for(lambda: not pidfile.exists(), timeout=30)
