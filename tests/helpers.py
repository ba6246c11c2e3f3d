"""Small helpers shared by the tests: waiting, and capturing in a background thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes; return the last result."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


class Capture(threading.Thread):
    """Run ``receiver.capture(**options)`` in a thread; started, it waits until the queue is bound."""

    def __init__(self, receiver: Any, **options: Any) -> None:
        super().__init__(daemon=True)
        self.receiver = receiver
        self.options = options
        self.errors: list[BaseException] = []
        self.ready = threading.Event()

    def start(self) -> Capture:
        previous = self.receiver.on_ready

        def on_ready() -> None:
            if previous is not None:
                previous()
            self.ready.set()

        self.receiver.on_ready = on_ready
        super().start()
        assert self.ready.wait(30), f"receiver never became ready: {self.errors}"
        return self

    def run(self) -> None:
        try:
            self.receiver.capture(**self.options)
        except BaseException as exc:  # handed to the test through ``errors``
            self.errors.append(exc)
            self.ready.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the receiver to stop and wait for the thread."""
        self.receiver.should_stop = True
        self.join(timeout)
        assert not self.is_alive(), "capture did not stop"


class CeleryCapture(threading.Thread):
    """Celery's own receiver feeding Celery's own State, in a thread (for comparisons)."""

    def __init__(self, broker_url: str) -> None:
        super().__init__(daemon=True)
        from celery import Celery
        self.app = Celery("compare", broker=broker_url, set_as_current=False)
        self.state = self.app.events.State()
        self.connection = self.app.connection_for_read()
        self.receiver = self.app.events.Receiver(self.connection, handlers={"*": self.state.event})
        self.ready = threading.Event()
        self.receiver.on_consume_ready = self._on_ready
        self.errors: list[BaseException] = []

    def _on_ready(self, *args: Any, **kwargs: Any) -> None:
        self.ready.set()

    def start(self) -> CeleryCapture:
        super().start()
        assert self.ready.wait(30), f"Celery's receiver never became ready: {self.errors}"
        return self

    def run(self) -> None:
        try:
            self.receiver.capture(limit=None, timeout=None, wakeup=False)
        except BaseException as exc:
            self.errors.append(exc)
            self.ready.set()

    def stop(self) -> None:
        self.receiver.should_stop = True
        self.join(10)
        self.connection.release()
