"""The /metrics body: celery-exporter's families rendered ahead of scrapes, evtools' own live.

prometheus_client takes about 8 µs a sample to format, so 10,000 series would take a scrape
~100 ms. Instead the celery_* families are rendered (by prometheus_client, in the format
asked for) in a background thread while events change them, and a scrape serves the last
rendering when it is exact (nothing changed since) or at most ``max_age`` seconds old;
otherwise, or for the first scrape in a format, the scrape renders it itself. The evtools_*
families (a few dozen samples: silence, broker connection, lag) are rendered at every scrape.

The bound is the contract: a celery_* sample is never older than ``max_age`` when served.
The cost is kept near one rendering per scrape: scrapes come at a steady interval, so the
background renders a changed format only when its next scrape is due within ``max_age / 2``
(or every ``max_age / 2`` while no interval is known, or a scrape is overdue).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from .aggregates import CeleryMetrics

__all__ = ("Exposition", "Rendering", "render")

logger = logging.getLogger(__name__)

#: What ends an OpenMetrics exposition, and so must end only the whole body.
OPENMETRICS_EOF = b"# EOF\n"


def render(registry: CollectorRegistry, openmetrics: bool) -> bytes:
    """Return the registry's samples in OpenMetrics or the classic text format."""
    return generate_openmetrics(registry) if openmetrics else generate_latest(registry)


@dataclasses.dataclass(frozen=True, slots=True)
class Rendering:
    """One rendering of the celery_* families (without OpenMetrics' ``# EOF``)."""

    body: bytes
    #: :attr:`CeleryMetrics.version` read before the rendering began.
    version: int
    #: When the rendering began (``clock``, monotonic): the samples are at least this recent.
    taken_at: float
    #: How long it took, in seconds.
    seconds: float


class Exposition:
    """Bodies for /metrics, in either format, answered from memory.

    ``celery`` holds the families rendered ahead, ``health`` those rendered at each scrape.
    A format is kept rendered while it is scraped: the background thread re-renders it once
    it changed, is ``max_age / 2`` old and its next scrape is due (judging by the shortest
    of the last intervals between scrapes), until ``keep_warm`` seconds pass without a
    scrape in it. With ``max_age`` 0 there is no background thread and a scrape renders
    whenever anything changed since the last rendering.
    """

    def __init__(self, metrics: CeleryMetrics, celery: CollectorRegistry,
                 health: CollectorRegistry, max_age: float = 2.0, keep_warm: float = 600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.metrics = metrics
        self.celery = celery
        self.health = health
        self.max_age = max_age
        self.keep_warm = keep_warm
        self.clock = clock
        #: Renderings of the celery_* families made so far (by scrapes or in the background).
        self.renders = 0
        self._latest: dict[bool, Rendering] = {}
        #: The last few scrape times per format (OpenMetrics or not), oldest first.
        self._scrapes: dict[bool, deque[float]] = {False: deque(maxlen=5), True: deque(maxlen=5)}
        self._rendering = threading.Lock()  # one rendering at a time; others wait for it
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- scrapes -----------------------------------------------------------------------------

    def body(self, openmetrics: bool) -> bytes:
        """The whole /metrics body in one format: celery_* from memory, evtools_* fresh."""
        now = self.clock()
        self._scrapes[openmetrics].append(now)
        celery = self.latest(openmetrics, now)
        return celery.body + render(self.health, openmetrics)

    def latest(self, openmetrics: bool, now: float | None = None) -> Rendering:
        """A rendering of the celery_* families within the bound, rendering one if needed."""
        self.metrics.expire_workers()  # time alone can take a worker down
        rendering = self._latest.get(openmetrics)
        if self._usable(rendering, self.clock() if now is None else now):
            assert rendering is not None
            return rendering
        return self._render(openmetrics, only_if_stale=True)

    def _usable(self, rendering: Rendering | None, now: float) -> bool:
        """Exact (nothing changed since it began), or within the age bound."""
        return rendering is not None and (
            rendering.version == self.metrics.version
            or self.max_age > 0 and now - rendering.taken_at <= self.max_age)

    def _render(self, openmetrics: bool, only_if_stale: bool) -> Rendering:
        with self._rendering:
            rendering = self._latest.get(openmetrics)
            if only_if_stale and self._usable(rendering, self.clock()):
                assert rendering is not None
                return rendering
            version, started = self.metrics.version, self.clock()
            body = render(self.celery, openmetrics)
            if openmetrics:
                body = body.removesuffix(OPENMETRICS_EOF)
            rendering = Rendering(body, version, started, self.clock() - started)
            self._latest[openmetrics] = rendering
            self.renders += 1
            return rendering

    # -- the background renderer ---------------------------------------------------------------

    def next_scrape(self, openmetrics: bool) -> float | None:
        """When the next scrape in this format is expected (None: no interval known yet)."""
        times = list(self._scrapes[openmetrics])  # a copy: scrapes append to it meanwhile
        if len(times) < 2:
            return None
        gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
        return times[-1] + min(gaps)

    def refresh(self) -> int:
        """Re-render each format scraped lately that changed, is ``max_age / 2`` old and whose
        next scrape is due within ``max_age / 2`` (or unknown, or overdue).

        What the background thread does at each tick; returns how many it rendered.
        """
        self.metrics.expire_workers()
        rendered = 0
        for openmetrics, times in self._scrapes.items():
            now = self.clock()
            if not times or now - times[-1] > self.keep_warm:
                continue
            rendering = self._latest.get(openmetrics)
            if rendering is None or rendering.version == self.metrics.version:
                continue  # the next scrape renders it / still exact
            if now - rendering.taken_at < self.max_age / 2:
                continue
            due = self.next_scrape(openmetrics)
            if due is not None and now < due - self.max_age / 2:
                continue  # no scrape expected before this rendering would be stale anyway
            self._render(openmetrics, only_if_stale=False)
            rendered += 1
        return rendered

    def start(self) -> None:
        """Render in a background thread (nothing to do when ``max_age`` is 0)."""
        if self.max_age <= 0 or self._thread is not None:
            return
        thread = threading.Thread(target=self._run, name="evtools-render", daemon=True)
        thread.start()
        self._thread = thread  # only once started: stop() may come from another thread any time

    def _run(self) -> None:
        tick = self.max_age / 4
        while not self._stopping.wait(tick):
            try:
                self.refresh()
            except Exception:  # a scrape renders by itself then; keep the thread alive
                logger.exception("rendering the metrics in the background failed")

    def stop(self) -> None:
        """Stop the background thread (twice is harmless)."""
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(5)
