"""Tasks run by the real Celery worker in the interop tests (Celery is a test dependency)."""

import json
import os
import time

from celery import Celery

app = Celery("interop_tasks", broker=os.environ.get("CELERY_BROKER_URL", "memory://"),
             backend=os.environ.get("CELERY_RESULT_BACKEND") or None)
app.conf.update(
    task_send_sent_event=True,
    task_serializer="json",
    accept_content=["json"],
    event_serializer="json",
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    task_ignore_result=True,
    # Sentinel's master_name, TLS options...: JSON objects, as the tests give them
    broker_transport_options=json.loads(os.environ.get("INTEROP_TRANSPORT_OPTIONS") or "{}"),
    broker_use_ssl=json.loads(os.environ.get("INTEROP_USE_SSL") or "false"),
)


@app.task
def add(x, y):
    return x + y


@app.task
def fail(message="boom"):
    raise ValueError(message)


@app.task(bind=True, max_retries=3)
def flaky(self, succeed_after=1):
    """Retries ``succeed_after`` times (task-retried), then succeeds."""
    if self.request.retries < succeed_after:
        raise self.retry(exc=RuntimeError(f"transient #{self.request.retries}"), countdown=0.2)
    return f"ok after {self.request.retries}"


@app.task
def slow(seconds=30):
    time.sleep(seconds)
    return seconds
