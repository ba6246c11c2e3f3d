"""The monitor's frame: build and draw one screen of a State holding many tasks, on a real terminal.

The drawing runs in the child of :func:`pty.fork`, so curses has a pseudo-terminal of a fixed
size; the parent drains the terminal's output and reads the timings from a pipe.
"""

from __future__ import annotations

import curses
import fcntl
import json
import os
import pty
import re
import statistics
import struct
import termios
import time
from collections.abc import Callable
from typing import Any

__all__ = ("time_frames", "ROWS", "COLUMNS")

ROWS, COLUMNS = 50, 160

#: A task row shows the start of a uuid.
UUID_START = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-")

Frames = Callable[[Any, int], dict[str, Any]]


def task_rows_on(window: curses.window) -> int:
    """How many lines of ``window`` show a task (a check that the frame really was drawn)."""
    height = window.getmaxyx()[0]
    return sum(1 for y in range(height) if UUID_START.search(window.instr(y, 0)))


def _evtools_frames(state: Any, count: int) -> dict[str, Any]:
    """Time evtools' frame: build_frame + erase + draw_tasks + refresh, and the monitor's whole draw."""
    from evtools.top import screens
    from evtools.top.app import Monitor
    from evtools.top.view import TaskFilter, build_frame

    timings: dict[str, list[float]] = {"frame": [], "monitor_draw": []}
    rows: dict[str, int] = {}

    def run(screen: curses.window) -> None:
        palette = screens.Palette()
        table_height = screen.getmaxyx()[0] - 4
        for _ in range(count):
            began = time.perf_counter()
            frame = build_frame(state, 0, table_height, TaskFilter())
            screen.erase()
            screens.draw_tasks(screen, frame, 0, palette)
            screen.refresh()
            timings["frame"].append(time.perf_counter() - began)
        rows["frame"] = task_rows_on(screen)
        monitor = Monitor(state, source=None, broker="bench")
        monitor.palette = palette
        for _ in range(count):
            began = time.perf_counter()
            monitor.draw(screen)
            timings["monitor_draw"].append(time.perf_counter() - began)
        rows["monitor_draw"] = task_rows_on(screen)

    curses.wrapper(run)
    return {"timings": timings, "rows": rows}


def _celery_frames(state: Any, count: int) -> dict[str, Any]:
    """Time Celery's frame: ``CursesMonitor.draw`` (it reads the State and draws in one go)."""
    from celery import Celery
    from celery.events.cursesmon import CursesMonitor

    monitor = CursesMonitor(state, app=Celery("bench", set_as_current=False))
    timings: list[float] = []
    monitor.init_screen()
    try:
        for _ in range(count):
            began = time.perf_counter()
            monitor.draw()
            timings.append(time.perf_counter() - began)
        rows = task_rows_on(monitor.win)
    finally:
        monitor.resetscreen()
    return {"timings": {"frame": timings}, "rows": {"frame": rows}}


FRAMES: dict[str, Frames] = {"evtools": _evtools_frames, "celery": _celery_frames}


def _child(impl: str, state: Any, count: int, result_fd: int) -> None:
    """In the pseudo-terminal: size it, draw, write the timings to ``result_fd``, exit."""
    status = 0
    try:
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        os.environ.update(TERM="xterm-256color", LINES=str(ROWS), COLUMNS=str(COLUMNS))
        payload = FRAMES[impl](state, count)
    except BaseException as exc:  # reported to the parent, which has the real stdout
        payload, status = {"error": f"{type(exc).__name__}: {exc}"}, 1
    os.write(result_fd, json.dumps(payload).encode())
    os._exit(status)


def _drain_terminal(master: int) -> None:
    """Read the child's screen output until it closes the terminal (else it would block)."""
    while True:
        try:
            if not os.read(master, 1 << 16):
                return
        except OSError:  # EIO: the child is gone
            return


def time_frames(impl: str, state: Any, count: int) -> dict[str, Any]:
    """Draw ``count`` frames of ``state`` with ``impl``'s monitor; return the median ms of each kind."""
    read_fd, write_fd = os.pipe()
    pid, master = pty.fork()
    if pid == 0:
        os.close(read_fd)
        _child(impl, state, count, write_fd)
    os.close(write_fd)
    _drain_terminal(master)
    os.waitpid(pid, 0)
    os.close(master)
    with os.fdopen(read_fd, "rb") as pipe:
        payload = json.loads(pipe.read() or b'{"error": "no result"}')
    if "error" in payload:
        return {"error": payload["error"]}
    result = {f"{kind}_ms": statistics.median(times) * 1000 for kind, times in payload["timings"].items()}
    result.update({f"{kind}_task_rows": rows for kind, rows in payload["rows"].items()})
    return result
