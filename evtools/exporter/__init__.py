"""A Prometheus exporter for Celery: celery-exporter's metrics, from evtools' event stream.

A view like the others: it reads events (and the :class:`~evtools.state.State` it builds from
them) through public APIs only. Formatting needs the optional ``prometheus-client``
(``pip install 'evtools[prometheus]'``); :mod:`.aggregates` alone does not.
"""

from __future__ import annotations

from .aggregates import CeleryMetrics
from .config import ExporterConfig

__all__ = ("CeleryMetrics", "ExporterConfig")
