"""evtop, the curses monitor: a view of the State drawn from snapshots, keys in one table."""

from __future__ import annotations

import os
import sys
from typing import Any

from ..transport.broker import connection_for, safe_url
from ..config import Settings
from ..errors import EvtoolsError

__all__ = ("run_top", "RemoteControl")


class RemoteControl:
    """The monitor's remote control: revoke and rate limit, replies as lines of text."""

    def __init__(self, settings: Settings, timeout: float = 2.0) -> None:
        self.settings = settings
        self.timeout = timeout

    def _call(self, name: str, *args: Any, **kwargs: Any) -> list[str]:
        from .. import control
        connection = connection_for(self.settings, connect_timeout=self.timeout)
        try:
            replies = getattr(control, name)(connection, *args, timeout=self.timeout,
                                             settings=self.settings, **kwargs)
        finally:
            connection.release()
        lines = []
        for reply in replies or []:
            for hostname, answer in reply.items():
                text = answer.get("ok") or answer.get("error") if isinstance(answer, dict) else answer
                lines.append(f"{hostname}: {text}")
        return lines

    def revoke(self, uuid: str, terminate: bool = False) -> list[str]:
        """Revoke a task (terminating it if asked); return the workers' replies."""
        return self._call("revoke", uuid, terminate=terminate)

    def rate_limit(self, name: str, rate: str) -> list[str]:
        """Set a rate limit for a task name; return the workers' replies."""
        return self._call("rate_limit", name, rate)


def run_top(state: Any, source: Any, settings: Settings | None) -> int:
    """Open the monitor on a terminal; raise a one-line error when that cannot be done."""
    if not (sys.stdout.isatty() and sys.stdin.isatty()):
        raise EvtoolsError("the monitor needs a terminal: use --dump to print events instead")
    try:
        import curses  # noqa: F401 - its absence is the error we report
    except ImportError:
        raise EvtoolsError("the monitor needs the curses module, which this Python lacks: "
                           "use --dump to print events instead") from None
    if os.environ.get("TERM") in (None, "", "dumb"):
        raise EvtoolsError("the monitor needs a terminal that can draw (TERM is unset or dumb): "
                           "use --dump to print events instead")
    from .app import Monitor
    broker = safe_url(settings.broker_url) if settings is not None else "replay"
    control = RemoteControl(settings) if settings is not None else None
    return Monitor(state, source, broker=broker, control=control).run()
