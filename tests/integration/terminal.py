"""A real pseudo-terminal for the monitor: a private tmux server, one pane, keys and screens."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


class Terminal:
    """``evtools ARGS`` running in a tmux pane of ``width`` x ``height`` cells."""

    def __init__(self, *args: str, width: int = 120, height: int = 40,
                 env: dict[str, str] | None = None) -> None:
        self.socket = f"evtools-test-{uuid.uuid4().hex[:8]}"
        command = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "evtools", *args])
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
        shell = f"cd {shlex.quote(str(REPO))}; env {exports} {command}; echo EXIT=$?; sleep 600"
        self._tmux("new-session", "-d", "-s", "main", "-x", str(width), "-y", str(height), shell)

    def _tmux(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True,
                              timeout=30, env=dict(os.environ, TERM="xterm-256color"))
        if done.returncode != 0 and args[0] != "kill-server":
            raise RuntimeError(f"tmux {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def screen(self) -> str:
        """The pane's text now."""
        return self._tmux("capture-pane", "-p", "-t", "main")

    def keys(self, *keys: str, literal: bool = False) -> None:
        """Type keys (tmux names such as Enter, Escape, Down; or literal text)."""
        self._tmux("send-keys", "-t", "main", *(["-l"] if literal else []), *keys)
        time.sleep(0.3)

    def resize(self, width: int, height: int) -> None:
        self._tmux("resize-window", "-t", "main", "-x", str(width), "-y", str(height))

    def wait_for(self, predicate, timeout: float = 30.0) -> bool:
        """Wait until ``predicate(screen_text)`` is true."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.screen()):
                return True
            time.sleep(0.2)
        return False

    def wait_text(self, text: str, timeout: float = 30.0) -> bool:
        return self.wait_for(lambda screen: text in screen, timeout)

    def exited(self) -> str | None:
        """``EXIT=<status>`` once the command ended, else None."""
        for line in self.screen().splitlines():
            if line.startswith("EXIT="):
                return line
        return None

    def close(self) -> None:
        self._tmux("kill-server")
