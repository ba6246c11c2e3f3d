"""The monitor's loop: keys in, frames out (at most ~10 a second), events consumed meanwhile."""

from __future__ import annotations

import collections
import curses
import logging
import os
import threading
import time
from typing import Any
from collections.abc import Callable

from ..errors import EvtoolsError
from ..state import State
from . import screens
from .keys import action_for
from .view import Frame, TaskFilter, build_frame, task_details, worker_rows

__all__ = ("Monitor",)

FRAME_INTERVAL = 0.1


class _LogBuffer(logging.Handler):
    """Keeps the last log messages for the status line instead of writing over the screen."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: collections.deque[str] = collections.deque(maxlen=50)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.messages.append(record.getMessage().splitlines()[0][:300])
        except Exception:  # a message that cannot be formatted is not worth a crash
            pass


class Monitor:
    """evtop: a curses view of a :class:`State` fed by an event source in a thread.

    ``control`` is an object with ``revoke(uuid, terminate)`` and ``rate_limit(name, rate)``
    returning reply lines (None when there is no broker to talk to, as in a replay).
    """

    def __init__(self, state: State, source: Any, broker: str = "",
                 control: Any = None) -> None:
        self.state = state
        self.source = source
        self.broker = broker
        self.control = control
        self.filter = TaskFilter()
        self.selected = 0
        self.offset = 0
        self.view = "tasks"  # tasks, details, workers
        self.detail: tuple[str, str] = ("", "info")
        self.detail_scroll = 0
        self.box: list[str] | None = None
        self.paused_frame: Frame | None = None
        self.quitting = False
        self.source_error: str | None = None
        self.last_event_at: float | None = None
        self._seen_events = -1
        self._log = _LogBuffer()
        self._thread: threading.Thread | None = None

    # -- running ---------------------------------------------------------------------------

    def run(self) -> int:
        """Consume events in a thread and draw until the user quits; return the exit status."""
        root = logging.getLogger()
        saved = root.handlers[:]
        root.handlers = [self._log]
        self._thread = threading.Thread(target=self._consume, name="evtools-events", daemon=True)
        self._thread.start()
        os.environ.setdefault("ESCDELAY", "25")  # Esc answers at once, not after a second
        try:
            curses.wrapper(self._main)
        finally:
            root.handlers = saved
            self.source.stop()
            self._thread.join(3)
        return 0

    def _consume(self) -> None:
        try:
            self.source.run(self.state.event)
        except EvtoolsError as exc:
            self.source_error = str(exc)
        except Exception as exc:  # shown on the status line: the monitor never dies silently
            self.source_error = f"event capture stopped: {type(exc).__name__}: {exc}"
            logging.getLogger(__name__).exception("event capture stopped")

    def _main(self, screen: curses.window) -> None:
        try:
            curses.curs_set(0)
        except curses.error:
            pass
        screen.timeout(int(FRAME_INTERVAL * 1000))
        screen.keypad(True)
        self.palette = screens.Palette()
        last_draw = 0.0
        interval = FRAME_INTERVAL
        dirty = True
        while not self.quitting:
            key = screen.getch()
            if key != -1:
                self.handle_key(screen, key)
                dirty = True
            now = time.monotonic()
            if self.state.event_count != self._seen_events:
                self._seen_events = self.state.event_count
                self.last_event_at = time.time()
                dirty = True
            if dirty and now - last_draw >= interval or now - last_draw >= max(interval, 1.0):
                self.draw(screen)
                took = time.monotonic() - now
                # A slow frame (a rare filter over 100,000 tasks) must not starve the thread
                # that consumes events: drawing gets at most a fifth of the time.
                interval = max(FRAME_INTERVAL, took * 5)
                last_draw, dirty = now, False

    # -- keys ------------------------------------------------------------------------------

    def handle_key(self, screen: curses.window, key: int) -> None:
        """Do what ``key`` is bound to (any key closes an open box)."""
        if key == curses.KEY_RESIZE:
            curses.update_lines_cols()
            return
        if self.box is not None:
            self.box = None
            return
        action = action_for(key)
        if action is None:
            return
        height = screen.getmaxyx()[0]
        page = max(height - 4, 1)
        moves = {"down": 1, "up": -1, "page_down": page, "page_up": -page}
        if action in moves:
            if self.view == "details":
                self.detail_scroll = max(0, self.detail_scroll + moves[action])
            else:
                self.selected = max(0, self.selected + moves[action])
        elif action == "top":
            self.selected = self.detail_scroll = 0
        elif action == "bottom":
            self.selected = 10**9
        elif action in ("info", "traceback", "result"):
            self._open_details(action if action != "info" else "info")
        elif action == "back":
            self.view = "tasks"
        elif action == "workers":
            self.view = "tasks" if self.view == "workers" else "workers"
        elif action == "help":
            self.box = screens.help_box()
        elif action == "pause":
            self.paused_frame = None if self.paused_frame is not None else self._frame(screen)
        elif action in ("only_failed", "only_active"):
            wanted = action.removeprefix("only_")
            self.filter = TaskFilter(self.filter.pattern, None if self.filter.only == wanted else wanted)
            self.selected = 0
        elif action == "filter":
            pattern = self.prompt(screen, "Filter (name, uuid, worker; * ? globs): ",
                                  self.filter.pattern)
            if pattern is not None:
                self.filter = TaskFilter(pattern, self.filter.only)
                self.selected = 0
        elif action == "revoke":
            self._revoke(screen)
        elif action == "rate_limit":
            self._rate_limit(screen)
        elif action == "quit":
            self.quitting = True

    def _open_details(self, what: str) -> None:
        row = self._current_row
        if row is None:
            return
        self.detail, self.detail_scroll, self.view = (row.uuid, what), 0, "details"

    def _revoke(self, screen: curses.window) -> None:
        row = self._current_row
        if row is None:
            return
        answer = self.prompt(screen, f"Revoke {row.uuid}? [y]es, [t]erminate it, [N]o: ", "",
                             single_key=True)
        if answer not in ("y", "t"):
            return
        self.box = self._ask_workers(lambda: self.control.revoke(row.uuid, terminate=answer == "t"))

    def _rate_limit(self, screen: curses.window) -> None:
        row = self._current_row
        if row is None or not row.name:
            return
        rate = self.prompt(screen, f"Rate limit for {row.name} (like 10/m, 0 for none): ", "")
        if rate:
            self.box = self._ask_workers(lambda: self.control.rate_limit(row.name, rate))

    def _ask_workers(self, ask: Callable[[], list[str]]) -> list[str]:
        if self.control is None:
            return ["Remote control needs a broker (not available in a replay)."]
        try:
            replies = ask()
        except Exception as exc:  # shown to the user: a control failure must not end the monitor
            return [f"Failed: {exc}"]
        return replies or ["No worker replied in time."]

    def prompt(self, screen: curses.window, question: str, initial: str,
               single_key: bool = False) -> str | None:
        """Ask on the status line; return the answer (None if cancelled with Esc)."""
        text = initial
        screen.timeout(-1)
        try:
            while True:
                height, width = screen.getmaxyx()
                screens.put(screen, height - 1, 0, screens.pad(question + text, width),
                            curses.A_REVERSE)
                screen.refresh()
                try:
                    char = screen.get_wch()
                except curses.error:
                    continue
                if single_key:
                    return char.lower() if isinstance(char, str) else ""
                if char in ("\n", "\r") or char == curses.KEY_ENTER:
                    return text
                if char in ("\x1b", "\x03"):
                    return None
                if char in (curses.KEY_BACKSPACE, "\x7f", "\b"):
                    text = text[:-1]
                elif char == curses.KEY_RESIZE:
                    curses.update_lines_cols()
                elif isinstance(char, str) and char.isprintable():
                    text += char
        finally:
            screen.timeout(int(FRAME_INTERVAL * 1000))

    # -- drawing ---------------------------------------------------------------------------

    def _frame(self, screen: curses.window) -> Frame:
        height = screen.getmaxyx()[0]
        rows = max(height - 4, 1)
        if self.paused_frame is not None:
            return self.paused_frame
        if self.selected < self.offset:
            self.offset = self.selected
        elif self.selected >= self.offset + rows:
            self.offset = self.selected - rows + 1
        frame = build_frame(self.state, self.offset, rows, self.filter)
        if frame.total and self.selected >= frame.total:
            self.selected = frame.total - 1
            self.offset = max(0, min(self.offset, self.selected))
            frame = build_frame(self.state, max(0, self.selected - rows + 1), rows, self.filter)
            self.offset = frame.offset
        return frame

    @property
    def _current_row(self) -> Any:
        return self._row_for_selection

    def draw(self, screen: curses.window) -> None:
        """Draw one frame."""
        screen.erase()
        height, width = screen.getmaxyx()
        if height < screens.MIN_HEIGHT or width < screens.MIN_WIDTH:
            screens.put(screen, 0, 0, "terminal too small" if width >= 18 else "too small")
            screen.refresh()
            return
        mode = {"tasks": "tasks", "workers": "workers", "details": self.detail[1]}[self.view]
        screens.header(screen, self.broker, mode + (f"  [{self.filter.describe()}]" if self.filter else ""))
        frame = self._frame(screen)
        self._row_for_selection = None
        index = self.selected - frame.offset
        if 0 <= index < len(frame.rows):
            self._row_for_selection = frame.rows[index]
        if self.view == "tasks":
            screens.draw_tasks(screen, frame, self.selected, self.palette)
        elif self.view == "workers":
            screens.draw_workers(screen, worker_rows(self.state), self.palette)
        else:
            uuid, what = self.detail
            lines = task_details(self.state, uuid, what)
            self.detail_scroll = screens.draw_lines(screen, f"{what}: {uuid}", lines,
                                                    self.detail_scroll)
        screens.status_line(screen, self._status(frame))
        if self.box is not None:
            screens.draw_box(screen, self.box)
        screen.refresh()

    _row_for_selection = None

    def _status(self, frame: Frame) -> str:
        more = "+" if frame.extra.get("more") else ""
        parts = [f"events: {frame.event_count}", f"tasks: {frame.total}{more}",
                 f"workers: {len(frame.workers_alive)}/{frame.workers_total}"]
        if self.last_event_at is not None:
            parts.append(f"last event {time.time() - self.last_event_at:.0f}s ago")
        connected = getattr(self.source, "connected", None)
        waiting = getattr(self.source, "waiting", None)
        if self.source_error:
            parts.append(self.source_error)
        elif waiting:
            parts.append(waiting)
        elif connected is not None and not connected.is_set():
            parts.append("connecting..." if not getattr(self.source, "reconnects", 0)
                         else "reconnecting...")
        reconnects = getattr(self.source, "reconnects", 0)
        if reconnects and connected is not None and connected.is_set():
            parts.append(f"reconnected {reconnects}x")
        receiver = getattr(self.source, "receiver", None)
        dropped = frame.dropped + sum(getattr(receiver, "dropped", {}).values())
        dropped += sum(getattr(self.source, "dropped", {}).values())
        if dropped:
            parts.append(f"dropped: {dropped}")
        if self.paused_frame is not None:
            parts.append("PAUSED")
        if self._log.messages:
            parts.append(self._log.messages[-1])
        parts.append("? for help")
        return " | ".join(parts)
