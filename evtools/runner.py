"""Running a view against an event source until the user stops it, the Unix way.

Ctrl-C and SIGTERM end the run with status 0; a closed pipe (``| head -1``) ends it quietly.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ("run_until_stopped", "terminate_as_interrupt")


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM stops the program the way Ctrl-C does."""
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _silence_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so the interpreter's final flush is quiet."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    finally:
        os.close(devnull)


def run_until_stopped(run: Callable[[], None], on_stop: Callable[[], None] | None = None) -> int:
    """Call ``run``; return 0 when it ends, or is ended by Ctrl-C, SIGTERM or a closed pipe."""
    with terminate_as_interrupt():
        try:
            run()
        except KeyboardInterrupt:
            pass
        except BrokenPipeError:
            _silence_stdout()
        finally:
            if on_stop is not None:
                on_stop()
    return 0
