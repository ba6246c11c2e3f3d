"""JSONLinesCamera: one JSON document per picture, appended to a file log shippers can follow."""

from __future__ import annotations

import os
import time
from typing import Any

from ..errors import ConfigurationError
from ..snapshot import Polaroid
from ..state import State
from ..transport.speedups import dumps_line
from .rows import task_row, worker_row

__all__ = ("JSONLinesCamera",)


class JSONLinesCamera(Polaroid):
    """Append one JSON document per picture: its time, every worker with its liveness and
    heartbeat age, and the tasks that changed since the previous picture.

    Each document is one complete line written with a single ``write`` on a file opened for
    appending, so readers never see half a line; SIGHUP reopens the file (logrotate).
    """

    options_doc = {
        "path": (None, "The file to append to."),
    }

    def __init__(self, state: State, *args: Any, path: str | None = None, **kwargs: Any) -> None:
        super().__init__(state, *args, **kwargs)
        if not path:
            raise ConfigurationError("JSONLinesCamera needs a file: --camera-opt path=FILE")
        self.path = os.path.abspath(path)
        self._fd = self._open()
        self._generation = 0

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        except OSError as exc:
            raise ConfigurationError(f"JSONLinesCamera cannot open {self.path}: "
                                     f"{exc.strerror}") from None

    def on_shutter(self, state: State) -> None:
        """Write one document; on failure the same changes are written at the next picture."""
        now = time.time()
        generation = state.generation
        document = {
            "time": now,
            "workers": [worker_row(w, now) for w in state.workers.data.values()],
            "tasks": [task_row(t) for t in state.tasks_changed_since(self._generation)],
        }
        # NaN and infinities from odd events are written as null (valid JSON).
        line = (dumps_line(document, default=str) + "\n").encode("utf-8", "replace")
        size = os.fstat(self._fd).st_size
        try:
            written = os.write(self._fd, line)
        except OSError:
            os.ftruncate(self._fd, size)  # never leave half a line behind
            raise
        if written != len(line):
            os.ftruncate(self._fd, size)
            raise OSError(f"short write to {self.path}: {written} of {len(line)} bytes")
        self._generation = generation

    def reopen(self) -> None:
        """Start appending to a fresh file at the same path (after logrotate moved the old one)."""
        old, self._fd = self._fd, self._open()
        os.close(old)

    def close(self) -> None:
        """Close the file."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
