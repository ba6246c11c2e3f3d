"""An exporter process: events in, aggregates, a background broker refresher, HTTP out."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry

from ..transport.broker import safe_url
from ..config import Settings
from ..errors import ConfigurationError
from ..filters import binding_keys
from ..source import LiveSource
from .aggregates import CeleryMetrics
from .brokerstats import BrokerRefresher
from .collector import CeleryCollector, HealthCollector
from .config import ExporterConfig
from .exposition import Exposition
from .http import MetricsServer

__all__ = ("Exporter", "ServeOptions", "SCRAPE_SWITCH_INTERVAL")

logger = logging.getLogger(__name__)

#: The GIL switch interval the exporter process runs with (sys.setswitchinterval): while the
#: event thread is busy, a scrape thread waits this long for the GIL at each socket call.
SCRAPE_SWITCH_INTERVAL = 0.001


@dataclasses.dataclass(frozen=True, slots=True)
class ServeOptions:
    """Where to listen and how to judge health."""

    host: str = "0.0.0.0"
    port: int = 9808
    #: /health fails once no event arrived for this long (0: never for silence).
    health_max_silence: float = 0.0
    #: Seconds between two broker measurements (queue lengths, inspect replies).
    refresh_interval: float = 10.0
    #: The oldest celery_* samples a scrape may serve (rendered ahead in the background);
    #: 0 renders at every scrape where something changed.
    max_staleness: float = 2.0


class Exporter:
    """The pieces of a running exporter, built from settings; :meth:`run` consumes events."""

    def __init__(self, settings: Settings, config: ExporterConfig,
                 serve: ServeOptions = ServeOptions(), source: Any = None) -> None:
        self.settings = settings
        self.config = config
        self.serve = serve
        self.metrics = CeleryMetrics(config)
        self.source = source if source is not None else LiveSource(
            settings, retry_startup=True, routing_keys=self.routing_keys())
        celery, health = CollectorRegistry(auto_describe=False), CollectorRegistry(auto_describe=False)
        celery.register(CeleryCollector(self.metrics))
        health.register(HealthCollector(self.metrics, self.source))
        self.exposition = Exposition(self.metrics, celery, health, max_age=serve.max_staleness)
        self.refresher = (BrokerRefresher(self.metrics, settings, serve.refresh_interval)
                          if self.metrics.owns_workers() else None)
        self.started_at = time.time()
        try:
            self.server = MetricsServer(self.exposition.body, serve.host, serve.port, self.health)
        except OSError as exc:
            raise ConfigurationError(f"cannot listen on {serve.host}:{serve.port}: "
                                     f"{exc.strerror or exc}") from None

    def routing_keys(self) -> tuple[str, ...]:
        """The binding keys for ``--type``: whole groups, since every task event feeds the task
        state (names, queues, sent times) and every worker event the worker gauges."""
        everything = binding_keys(())
        if binding_keys(self.config.types) == everything:
            return everything
        groups = [f"{group}-*" for group, wanted in (("task", self.metrics.owns_tasks()),
                                                     ("worker", self.metrics.owns_workers()))
                  if wanted]
        return binding_keys(groups or self.config.types)

    def health(self) -> tuple[bool, str]:
        """Healthy while connected to the broker and (with a limit) events keep coming."""
        url = safe_url(self.settings.broker_url)
        connected = getattr(self.source, "connected", None)
        if connected is not None and not connected.is_set():
            return False, f"Not connected to the broker {url}"
        silence = self.serve.health_max_silence
        if silence:
            last = self.metrics.last_event_at or self.started_at
            quiet = time.time() - last
            if quiet > silence:
                return False, (f"Connected to the broker {url}, but no event for {quiet:.0f} s "
                               f"(--health-max-silence {silence:g})")
        return True, f"Connected to the broker {url}"

    def run(self, started: Callable[[], None] | None = None) -> int:
        """Serve and consume until stopped; call ``started`` once serving."""
        self.server.start()
        self.exposition.start()
        if self.refresher is not None:
            self.refresher.start()
        logger.info("serving metrics on http://%s:%d/metrics", self.serve.host, self.server.port)
        if started is not None:
            if isinstance(self.source, LiveSource):
                self.source.on_running = started
            else:
                started()
        try:
            self.source.run(self.metrics.on_event)
        finally:
            self.stop()
        return 0

    def stop(self) -> None:
        """Stop consuming, refreshing and serving."""
        self.source.stop()
        if self.refresher is not None:
            self.refresher.stop()
        self.exposition.stop()
        self.server.stop()
