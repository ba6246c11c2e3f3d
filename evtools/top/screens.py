"""Drawing: the task table, the detail and workers views, help, prompts and message boxes.

Every write goes through :func:`put`, which escapes control characters, measures wide
characters, clips to the window and ignores the error curses raises for the last cell.
"""

from __future__ import annotations

import curses
from collections.abc import Sequence

from .. import __version__
from .keys import help_lines
from .view import Frame, WorkerRow
from .widestr import clip, pad, safe, text_width

__all__ = ("Palette", "put", "draw_tasks", "draw_lines", "draw_workers", "draw_box",
           "MIN_WIDTH", "MIN_HEIGHT")

MIN_WIDTH, MIN_HEIGHT = 20, 5

STATE_COLOURS = {"SUCCESS": curses.COLOR_GREEN, "FAILURE": curses.COLOR_RED,
                 "STARTED": curses.COLOR_YELLOW, "RETRY": curses.COLOR_MAGENTA,
                 "REVOKED": curses.COLOR_MAGENTA, "RECEIVED": curses.COLOR_CYAN,
                 "REJECTED": curses.COLOR_RED}
MONOCHROME = {"SUCCESS": curses.A_NORMAL, "FAILURE": curses.A_BOLD, "STARTED": curses.A_UNDERLINE,
              "RETRY": curses.A_BOLD, "REVOKED": curses.A_DIM, "RECEIVED": curses.A_NORMAL,
              "REJECTED": curses.A_BOLD}


class Palette:
    """Attributes by task state: colours when the terminal has them, else bold/dim/underline."""

    def __init__(self) -> None:
        self.states: dict[str, int] = dict(MONOCHROME)
        self.colour = False
        try:
            if curses.has_colors():
                curses.start_color()
                curses.use_default_colors()
                for number, (state, colour) in enumerate(STATE_COLOURS.items(), 1):
                    curses.init_pair(number, colour, -1)
                    self.states[state] = curses.color_pair(number)
                self.colour = True
        except curses.error:
            self.states = dict(MONOCHROME)

    def for_state(self, state: str) -> int:
        """Return the attribute for a task state."""
        return self.states.get(state, curses.A_NORMAL)


def put(win: curses.window, y: int, x: int, text: str, attr: int = 0, width: int | None = None) -> None:
    """Write ``text`` at (y, x), made safe and clipped to the window (or ``width`` cells)."""
    height, cols = win.getmaxyx()
    if not (0 <= y < height and 0 <= x < cols):
        return
    room = cols - x if width is None else min(width, cols - x)
    text = clip(safe(text), room)
    try:
        win.addstr(y, x, text, attr)
    except curses.error:
        pass  # writing the bottom-right cell moves the cursor off the window: harmless


def _columns(width: int) -> tuple[int, int, int, int, int]:
    """Widths of uuid, worker, task, time and state for a screen ``width`` cells wide."""
    time_w, state_w = 8, 9
    rest = max(width - time_w - state_w - 4, 3)
    uuid_w = 36 if rest >= 80 else max(rest // 3, 1)  # whole uuids when there is room
    worker_w = max((rest - uuid_w) // 3, 1)
    name_w = max(rest - uuid_w - worker_w, 1)
    return uuid_w, worker_w, name_w, time_w, state_w


def header(win: curses.window, broker: str, mode: str) -> None:
    """The top line: version, broker, and what is shown."""
    width = win.getmaxyx()[1]
    put(win, 0, 0, pad(f" evtools {__version__}  {broker}  {mode}", width), curses.A_REVERSE)


def status_line(win: curses.window, text: str) -> None:
    """The bottom line."""
    height, width = win.getmaxyx()
    put(win, height - 1, 0, pad(text, width), curses.A_REVERSE)


def draw_tasks(win: curses.window, frame: Frame, selected: int, palette: Palette) -> None:
    """The task table, newest first, with the selected row highlighted and workers below it."""
    height, width = win.getmaxyx()
    uuid_w, worker_w, name_w, time_w, state_w = _columns(width)
    titles = (("UUID", uuid_w), ("WORKER", worker_w), ("TASK", name_w), ("TIME", time_w),
              ("STATE", state_w))
    put(win, 1, 0, " ".join(pad(t, w) for t, w in titles), curses.A_BOLD)
    for line, row in enumerate(frame.rows):
        y = 2 + line
        if y >= height - 2:
            break
        index = frame.offset + line
        attr = curses.A_REVERSE if index == selected else 0
        cells = (pad(safe(row.uuid), uuid_w), pad(safe(row.worker), worker_w),
                 pad(safe(row.name), name_w), pad(row.time, time_w))
        text = " ".join(cells) + " "
        put(win, y, 0, text, attr)
        put(win, y, text_width(text), pad(row.state, state_w), attr | palette.for_state(row.state))
    if not frame.rows:
        put(win, 3, 2, "No tasks yet: waiting for events." if not frame.total else "")
    workers = ", ".join(frame.workers_alive) or "none"
    put(win, height - 2, 0, pad(f"Workers online: {workers}", width))


def draw_lines(win: curses.window, title: str, lines: Sequence[str], scroll: int) -> int:
    """A scrolling text view (task details); return the scroll position actually used."""
    height, width = win.getmaxyx()
    room = max(height - 3, 1)
    scroll = max(0, min(scroll, max(len(lines) - room, 0)))
    put(win, 1, 0, pad(title, width), curses.A_BOLD)
    for n, line in enumerate(lines[scroll:scroll + room]):
        put(win, 2 + n, 1, line.expandtabs(4))
    return scroll


def draw_workers(win: curses.window, rows: Sequence[WorkerRow], palette: Palette) -> None:
    """The workers view: status, last heartbeat, load, software and clock skew."""
    height, width = win.getmaxyx()
    put(win, 1, 0, pad(f"{'WORKER':<28} {'STATUS':<8} {'HEARTBEAT':>9} {'ACTIVE':>6} "
                       f"{'DONE':>7}  {'LOAD':<16} {'SKEW':>7}  SOFTWARE", width), curses.A_BOLD)
    colours = {"online": palette.for_state("SUCCESS"), "stale": palette.for_state("STARTED"),
               "offline": palette.for_state("FAILURE")}
    for n, row in enumerate(rows):
        y = 2 + n
        if y >= height - 1:
            break
        age = "-" if row.heartbeat_age is None else f"{row.heartbeat_age:.0f}s ago"
        load = "-" if not isinstance(row.loadavg, list) else " ".join(f"{v}" for v in row.loadavg[:3])
        skew = "-" if row.skew is None else f"{row.skew:+.1f}s{'!' if row.skew_warning else ''}"
        put(win, y, 0, pad(safe(row.hostname), 28))
        put(win, y, 29, pad(row.status, 8), colours.get(row.status, 0))
        put(win, y, 38, f"{age:>9} {safe(row.active):>6} {safe(row.processed):>7}  "
                        f"{safe(load):<16} {skew:>7}  {safe(row.software)}")


def draw_box(win: curses.window, lines: Sequence[str]) -> None:
    """A message box in the middle of the screen (help, replies, questions)."""
    height, width = win.getmaxyx()
    inner = min(max((text_width(safe(line)) for line in lines), default=10) + 2, width - 2)
    box_h = min(len(lines) + 2, height - 1)
    top, left = max((height - box_h) // 2, 0), max((width - inner - 2) // 2, 0)
    border = "+" + "-" * inner + "+"
    put(win, top, left, border)
    for n, line in enumerate(lines[:box_h - 2]):
        put(win, top + 1 + n, left, "|" + pad(" " + safe(line), inner) + "|")
    put(win, top + box_h - 1, left, border)


def help_box() -> list[str]:
    """The lines of the help box."""
    return ["Keys", ""] + help_lines() + ["", "any key closes this"]
