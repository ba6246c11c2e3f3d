"""The exporter's HTTP endpoints: ``/metrics`` (text or OpenMetrics), ``/health`` and ``/``."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_TYPE

__all__ = ("MetricsServer", "HealthCheck", "MetricsBody", "wants_openmetrics")

logger = logging.getLogger(__name__)

#: Answers (healthy, reason): what ``/health`` reports.
HealthCheck = Callable[[], tuple[bool, str]]

#: Returns the /metrics body, in OpenMetrics when called with True (an Exposition's ``body``).
MetricsBody = Callable[[bool], bytes]

INDEX = b"""<html><head><title>evtools exporter</title></head><body>
<h1>evtools exporter</h1><p>A Celery exporter for Prometheus.</p>
<p><a href="/metrics">Metrics</a> &middot; <a href="/health">Health</a></p>
</body></html>
"""


def wants_openmetrics(accept: str | None) -> bool:
    """Tell whether an Accept header asks for OpenMetrics (as Prometheus does when it can)."""
    for part in (accept or "").split(","):
        media = part.split(";", 1)[0].strip()
        if media == "application/openmetrics-text":
            return True
    return False


def _handler_for(server: MetricsServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                started = time.perf_counter()
                openmetrics = wants_openmetrics(self.headers.get("Accept"))
                body = server.metrics_body(openmetrics)
                server.last_scrape_seconds = time.perf_counter() - started
                self._send(200, body, OPENMETRICS_TYPE if openmetrics else CONTENT_TYPE_LATEST)
            elif path == "/health":
                healthy, reason = server.health()
                self._send(200 if healthy else 503, reason.encode() + b"\n",
                           "text/plain; charset=utf-8")
            elif path == "/":
                self._send(200, INDEX, "text/html; charset=utf-8")
            else:
                self._send(404, b"not found\n", "text/plain; charset=utf-8")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            logger.debug("%s %s", self.address_string(), format % args)

    return Handler


class MetricsServer:
    """Serves /metrics, /health and / over HTTP from a daemon thread (one thread per request)."""

    def __init__(self, metrics_body: MetricsBody, host: str = "0.0.0.0", port: int = 9808,
                 health: HealthCheck = lambda: (True, "OK")) -> None:
        self.metrics_body = metrics_body
        self.health = health
        self.last_scrape_seconds: float | None = None
        self.httpd = ThreadingHTTPServer((host, port), _handler_for(self))
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        return self.httpd.server_address[1]

    def start(self) -> None:
        """Serve in the background."""
        thread = threading.Thread(target=self.httpd.serve_forever, name="evtools-http",
                                  daemon=True)
        thread.start()
        self._thread = thread  # only once started: stop() may come from another thread any time

    def stop(self) -> None:
        """Stop serving and close the socket (twice is harmless)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self.httpd.shutdown()
            thread.join(5)
        self.httpd.server_close()
