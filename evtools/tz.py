"""UTC offsets as Celery sends them: hours *west* of UTC (New York 5.0, Berlin -1.0)."""

from __future__ import annotations

import time


def utcoffset() -> float:
    """Return this machine's current offset to UTC in hours west, exactly (5.5 stays 5.5)."""
    if time.localtime().tm_isdst:
        return time.altzone / 3600
    return time.timezone / 3600


def adjust_timestamp(timestamp: float, offset: float, here: float | None = None) -> float:
    """Return ``timestamp`` from a host at ``offset`` moved to this machine's clock zone."""
    if here is None:
        here = utcoffset()
    return timestamp - (offset - here) * 3600
