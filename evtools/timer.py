"""A small thread that calls functions at fixed intervals and survives their errors."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ("Timer", "TimerEntry")

logger = logging.getLogger(__name__)


class TimerEntry:
    """One repeating call; :meth:`cancel` stops it, calling the entry runs it once now."""

    __slots__ = ("interval", "fun", "cancelled", "_timer")

    def __init__(self, timer: Timer, interval: float, fun: Callable[[], Any]) -> None:
        self._timer = timer
        self.interval = interval
        self.fun = fun
        self.cancelled = False

    def __call__(self) -> None:
        self._timer.run_safely(self.fun)

    def cancel(self) -> None:
        """Stop calling this function."""
        self.cancelled = True
        self._timer.wake()


class Timer:
    """Call functions every N seconds from one daemon thread.

    An exception from a function is logged with its traceback and the function is called
    again at its next turn: the timer never dies silently.
    """

    def __init__(self, name: str = "evtools-timer") -> None:
        self.name = name
        self._queue: list[tuple[float, int, TimerEntry]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopped = False
        #: Exceptions raised by scheduled functions so far.
        self.errors = 0

    def call_repeatedly(self, interval: float, fun: Callable[[], Any]) -> TimerEntry:
        """Call ``fun`` every ``interval`` seconds, first after one interval."""
        entry = TimerEntry(self, float(interval), fun)
        with self._cond:
            heapq.heappush(self._queue, (time.monotonic() + entry.interval, next(self._order), entry))
            self._cond.notify()
        self._ensure_started()
        return entry

    def run_safely(self, fun: Callable[[], Any]) -> None:
        """Call ``fun``, logging (not raising) what it raises."""
        try:
            fun()
        except Exception:
            self.errors += 1
            logger.exception("scheduled call %s failed; it will run again at its next turn",
                             getattr(fun, "__qualname__", fun))

    def wake(self) -> None:
        """Make the thread look at its queue again."""
        with self._cond:
            self._cond.notify()

    def stop(self) -> None:
        """Stop the thread (pending calls are dropped)."""
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _ensure_started(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    self._discard_cancelled()
                    if self._queue and self._queue[0][0] <= time.monotonic():
                        break
                    timeout = self._queue[0][0] - time.monotonic() if self._queue else None
                    self._cond.wait(timeout)
                if self._stopped:
                    return
                due, _, entry = heapq.heappop(self._queue)
                heapq.heappush(self._queue, (max(due + entry.interval, time.monotonic()),
                                             next(self._order), entry))
            self.run_safely(entry.fun)

    def _discard_cancelled(self) -> None:
        while self._queue and self._queue[0][2].cancelled:
            heapq.heappop(self._queue)
