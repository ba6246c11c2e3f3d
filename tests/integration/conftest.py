"""Fixtures for integration tests: a real Celery worker on a real broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).parent


class CeleryWorker:
    """A real ``celery worker`` process running ``interop_tasks`` with events on (``-E``)."""

    def __init__(self, broker_url: str, hostname: str, log_path: Path, events: bool = True,
                 extra: tuple[str, ...] = (), env: dict[str, str] | None = None) -> None:
        self.hostname = hostname
        self.log_path = log_path
        env = dict(os.environ, CELERY_BROKER_URL=broker_url, PYTHONPATH=str(HERE), **(env or {}))
        args = [sys.executable, "-m", "celery", "-A", "interop_tasks", "worker", "-c", "2",
                "-P", "prefork", "--hostname", hostname, "-l", "info", "--without-mingle",
                "--without-gossip", *extra]
        if events:
            args.append("-E")
        self.log = open(log_path, "wb")
        self.process = subprocess.Popen(args, cwd=HERE, env=env, stdout=self.log,
                                        stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self) -> int | None:
        """Warm shutdown (SIGTERM: the worker sends worker-offline); kill if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.log.close()
        return self.process.returncode

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


@pytest.fixture
def celery_worker(tmp_path: Path) -> Iterator[Callable[..., CeleryWorker]]:
    """Start real Celery workers: ``celery_worker(broker_url, hostname="w1@test")``."""
    started: list[CeleryWorker] = []

    def start(broker_url: str, hostname: str = "w1@evtools-test", **options) -> CeleryWorker:
        worker = CeleryWorker(broker_url, hostname, tmp_path / f"{hostname}.log", **options)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def celery_client(broker_url: str):
    """A Celery client app on this test's broker, sending ``interop_tasks`` by name."""
    from celery import Celery
    app = Celery("interop-client", broker=broker_url, set_as_current=False)
    app.conf.update(task_send_sent_event=True, task_serializer="json", accept_content=["json"],
                    broker_connection_retry_on_startup=True, task_ignore_result=True)
    yield app
    app.close()
