"""Polaroid: periodic pictures of a :class:`~evtools.state.State` (the library half of evcam)."""

from __future__ import annotations

import importlib
import logging
import os
import signal
import threading
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from kombu.utils.limits import TokenBucket

from .errors import CameraError, ConfigurationError
from .state import State
from .timer import Timer, TimerEntry

if TYPE_CHECKING:
    from .source import LiveSource, ReplaySource

__all__ = ("Polaroid", "Signal", "parse_rate", "load_camera", "camera_options", "run_camera",
           "evcam")

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
    #: Skip a picture when no event arrived since the last one (counted in :attr:`skipped`).
    skip_unchanged = False
    #: Options this camera takes from ``--camera-opt key=value`` or ``EVTOOLS_CAMERA_<KEY>``:
    #: name -> (default, one-line description).
    options_doc: dict[str, tuple[Any, str]] = {}

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
        #: Pictures taken and pictures skipped (rate limit or nothing new).
        self.shutters = 0
        self.skipped = 0
        self._pictured_generation: Any = -1

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
        """Take one picture, unless ``maxrate`` says too many were taken (or nothing changed)."""
        generation = getattr(self.state, "generation", None)
        if self.skip_unchanged and generation == self._pictured_generation:
            self.skipped += 1
            return
        if self.maxrate is None or self.maxrate.can_consume():
            logger.debug("Shutter: %s", self.state)
            self.shutter_signal.send(sender=self.state)
            self.on_shutter(self.state)
            self.shutters += 1
            self._pictured_generation = generation
        else:
            self.skipped += 1

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

    def close(self) -> None:
        """Release what the camera holds (files, databases): override this."""

    def reopen(self) -> None:
        """Reopen files after log rotation (SIGHUP): override this."""

    def __enter__(self) -> Polaroid:
        self.install()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.cancel()


def load_camera(path: str) -> type[Polaroid]:
    """Import ``package.module.Class`` and check it is a camera; raise :class:`CameraError`."""
    module_name, _, class_name = path.rpartition(".")
    if not module_name or not class_name:
        raise CameraError(f"camera {path!r} is not a dotted path like package.module.Class")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise CameraError(f"cannot import camera module {module_name!r}: {exc}") from None
    except Exception as exc:  # the user's module raised while importing
        raise CameraError(f"importing camera module {module_name!r} failed: "
                          f"{type(exc).__name__}: {exc}") from None
    try:
        camera = getattr(module, class_name)
    except AttributeError:
        raise CameraError(f"module {module_name!r} has no camera {class_name!r}") from None
    if not (isinstance(camera, type) and issubclass(camera, Polaroid)):
        raise CameraError(f"{path!r} is not a camera: it must be a subclass of "
                          "evtools.snapshot.Polaroid")
    return camera


def camera_options(camera: type[Polaroid], given: list[str] | tuple[str, ...] = (),
                   environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return a camera's options: ``EVTOOLS_CAMERA_<KEY>`` variables, then ``key=value`` pairs."""
    environ = os.environ if environ is None else environ
    known = camera.options_doc
    options = {}
    for name in known:
        value = environ.get(f"EVTOOLS_CAMERA_{name.upper()}")
        if value is not None:
            options[name] = value
    for pair in given:
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ConfigurationError(f"--camera-opt {pair!r}: expected KEY=VALUE")
        if key not in known:
            accepted = ", ".join(sorted(known)) or "none"
            raise ConfigurationError(f"--camera-opt {key!r}: {camera.__name__} does not take it "
                                     f"(options: {accepted})")
        options[key] = value
    return options


def run_camera(camera_cls: type[Polaroid], source: LiveSource | ReplaySource, freq: float = 1.0,
               maxrate: str | float | None = None, timer: Any = None,
               options: dict[str, Any] | None = None, status: Callable[[str], Any] = print,
               camera_name: str | None = None, started: Callable[[], None] | None = None,
               app: Any = None) -> int:
    """Feed a State from ``source`` and photograph it with ``camera_cls`` until stopped.

    On Ctrl-C or SIGTERM the capture stops, one last picture is taken and the camera closes.
    ``timer`` and ``app``, when given, are passed to the camera.
    """
    from .proctitle import set_process_title
    from .runner import run_until_stopped
    set_process_title("cam")
    state = State()
    extra = {key: value for key, value in (("timer", timer), ("app", app)) if value is not None}
    camera = camera_cls(state, freq=freq, maxrate=maxrate, **extra, **(options or {}))
    name = camera_name or f"{camera_cls.__module__}.{camera_cls.__qualname__}"
    status(f"-> evcam: Taking snapshots with {name} (every {freq} secs.)")
    camera.install()
    restore = _reopen_on_hangup(camera)
    if started is not None:
        started()
    try:
        return run_until_stopped(lambda: source.run(state.event), on_stop=source.stop)
    finally:
        camera.cancel()
        camera.close()
        stop_timer = getattr(camera.timer, "stop", None)
        if stop_timer is not None:
            stop_timer()
        restore()


def _reopen_on_hangup(camera: Polaroid) -> Callable[[], None]:
    """On SIGHUP, reopen log files and the camera's files (logrotate); return an undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def reopen(signum: int, frame: Any) -> None:
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.FileHandler):
                handler.acquire()
                try:
                    handler.close()
                    handler.stream = handler._open()
                finally:
                    handler.release()
        try:
            camera.reopen()
        except Exception:  # a camera that cannot reopen keeps running with what it has
            logger.exception("camera could not reopen its files")

    previous = signal.signal(signal.SIGHUP, reopen)

    def restore() -> None:
        signal.signal(signal.SIGHUP, previous)
    return restore


def evcam(camera: str | type[Polaroid], freq: float = 1.0, maxrate: str | float | None = None,
          loglevel: str | int | None = 0, logfile: str | None = None, pidfile: str | None = None,
          timer: Any = None, app: Any = None, settings: Any = None, **kwargs: Any) -> int:
    """Take pictures of the cluster with ``camera`` until stopped, as Celery's ``evcam``.

    ``pidfile`` is held locked while the camera runs (:class:`~evtools.daemon.PidfileLocked`
    if another process holds it); ``loglevel`` (default WARNING) and ``logfile`` (default
    stderr) set up logging; ``app`` (a Celery app or its name) supplies the broker and the
    ``event_*`` settings unless ``settings`` is given; ``timer``, ``app`` and ``kwargs`` go
    to the camera.
    """
    from .config import load_app, resolve_settings
    from .daemon import PidFile
    from .logsetup import setup_logging
    from .source import LiveSource
    camera_cls = load_camera(camera) if isinstance(camera, str) else camera
    if isinstance(app, str):
        app = load_app(app)
    settings = settings or resolve_settings(app=app)
    with ExitStack() as stack:
        if pidfile:
            stack.enter_context(PidFile(pidfile))
        setup_logging(loglevel or None, logfile)
        return run_camera(camera_cls, LiveSource(settings, retry_startup=True), freq=freq,
                          maxrate=maxrate, timer=timer, options=kwargs,
                          app=app,
                          camera_name=camera if isinstance(camera, str) else None)
