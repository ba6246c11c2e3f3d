"""Polaroid: periodic pictures of a :class:`~evtools.state.State` (the library half of evcam)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kombu.utils.limits import TokenBucket

from .errors import ConfigurationError
from .state import State
from .timer import Timer, TimerEntry

__all__ = ("Polaroid", "Signal", "parse_rate")

logger = logging.getLogger("evtools.evcam")

_RATE_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_rate(rate: str | float | None) -> float:
    """Return a rate such as ``"10/m"``, ``"2/h"``, ``"0.5/s"`` or ``5`` in events per second."""
    if not rate:
        return 0.0
    if isinstance(rate, (int, float)):
        return float(rate)
    amount, _, unit = str(rate).partition("/")
    try:
        return float(amount) / _RATE_UNITS[unit.strip() or "s"]
    except (KeyError, ValueError):
        raise ConfigurationError(
            f"invalid rate {rate!r}: expected a number with /s, /m or /h, like 10/m") from None


class Signal:
    """A list of receivers called with ``(signal=..., sender=..., **named)`` on :meth:`send`."""

    def __init__(self, name: str, providing_args: Any = None) -> None:
        self.name = name
        self.receivers: list[Callable[..., Any]] = []

    def connect(self, receiver: Callable[..., Any], **_: Any) -> Callable[..., Any]:
        """Call ``receiver`` on every send (usable as a decorator)."""
        if receiver not in self.receivers:
            self.receivers.append(receiver)
        return receiver

    def disconnect(self, receiver: Callable[..., Any], **_: Any) -> bool:
        """Stop calling ``receiver``; return whether it was connected."""
        try:
            self.receivers.remove(receiver)
        except ValueError:
            return False
        return True

    def send(self, sender: Any, **named: Any) -> list[tuple[Callable[..., Any], Any]]:
        """Call every receiver; return ``(receiver, result)`` pairs."""
        return [(receiver, receiver(signal=self, sender=sender, **named))
                for receiver in list(self.receivers)]

    def __repr__(self) -> str:
        return f"<Signal: {self.name}>"


class Polaroid:
    """Take a picture of the state every ``freq`` seconds: override :meth:`on_shutter`.

    ``maxrate`` (``"10/m"``) caps how many pictures are taken; :meth:`on_cleanup` runs every
    ``cleanup_freq`` seconds; with ``clear_after`` the state is cleared after each picture.
    Each shutter sees the state frozen: no event is applied while it runs.
    """

    timer: Any = None
    clear_after = False

    def __init__(self, state: State, freq: float = 1.0, maxrate: str | float | None = None,
                 cleanup_freq: float = 3600.0, timer: Any = None, app: Any = None,
                 **options: Any) -> None:
        self.app = app
        self.state = state
        self.freq = float(freq)
        self.cleanup_freq = float(cleanup_freq)
        self.timer = timer or self.timer or Timer(name=f"{type(self).__name__}-timer")
        self.logger = logger
        self.maxrate = TokenBucket(parse_rate(maxrate)) if maxrate else None
        self.options = options
        self.shutter_signal = Signal("shutter_signal", providing_args={"state"})
        self.cleanup_signal = Signal("cleanup_signal")
        self._tref: TimerEntry | None = None
        self._ctref: TimerEntry | None = None

    def install(self) -> None:
        """Start taking pictures (and cleaning up) on the timer."""
        self._tref = self.timer.call_repeatedly(self.freq, self.capture)
        self._ctref = self.timer.call_repeatedly(self.cleanup_freq, self.cleanup)

    def on_shutter(self, state: State) -> None:
        """Called with the frozen state for every picture: override this."""

    def on_cleanup(self) -> None:
        """Called every ``cleanup_freq`` seconds: override this."""

    def cleanup(self) -> None:
        """Run the cleanup hooks."""
        logger.debug("Cleanup: Running...")
        self.cleanup_signal.send(sender=self.state)
        self.on_cleanup()

    def shutter(self) -> None:
        """Take one picture, unless ``maxrate`` says too many were taken."""
        if self.maxrate is None or self.maxrate.can_consume():
            logger.debug("Shutter: %s", self.state)
            self.shutter_signal.send(sender=self.state)
            self.on_shutter(self.state)

    def capture(self) -> None:
        """Take a picture with the state frozen (then clear it if ``clear_after``)."""
        self.state.freeze_while(self.shutter, clear_after=self.clear_after)

    def cancel(self) -> None:
        """Take one last picture and stop the timers."""
        if self._tref is not None:
            self._tref()
            self._tref.cancel()
        if self._ctref is not None:
            self._ctref.cancel()

    def __enter__(self) -> Polaroid:
        self.install()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.cancel()
