"""Run the ``evtools`` command as a real process and watch what it prints."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path


#: Every process started, so a test that fails half-way leaves none running (see conftest).
STARTED: list[EvtoolsProcess] = []


class EvtoolsProcess:
    """``python -m evtools ARGS`` with stdout and stderr collected by threads."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        self.args = args
        self.process = subprocess.Popen(
            [sys.executable, "-m", "evtools", *args], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=dict(os.environ, **(env or {})), cwd=cwd,
            start_new_session=True)
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._readers = [threading.Thread(target=self._read, args=(self.process.stdout, self.stdout),
                                          daemon=True),
                         threading.Thread(target=self._read, args=(self.process.stderr, self.stderr),
                                          daemon=True)]
        for reader in self._readers:
            reader.start()
        STARTED.append(self)

    @staticmethod
    def _read(stream, sink: list[str]) -> None:
        for raw in iter(stream.readline, b""):
            sink.append(raw.decode("utf-8", "replace").rstrip("\n"))

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_for(self, needle: str, stream: str = "stderr", timeout: float = 30.0) -> bool:
        """Wait until a line of ``stream`` contains ``needle``."""
        sink = self.stderr if stream == "stderr" else self.stdout
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(needle in line for line in list(sink)):
                return True
            if self.process.poll() is not None:
                time.sleep(0.2)
                return any(needle in line for line in list(sink))
            time.sleep(0.05)
        return False

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until the receiver consumes (needs ``-l info``)."""
        assert self.wait_for("consuming events from", timeout=timeout), self.report()

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM, then wait for the exit status (and the rest of the output)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            code = self.process.wait(5)
        for reader in self._readers:
            reader.join(5)
        return code

    def kill(self) -> None:
        """SIGKILL the process and its group (no cleanup on its side)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)

    def report(self) -> str:
        return (f"evtools {' '.join(self.args)}\n--- stdout ---\n" + "\n".join(self.stdout[-30:])
                + "\n--- stderr ---\n" + "\n".join(self.stderr[-30:]))
