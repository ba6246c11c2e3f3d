"""Every key of the monitor in one table: what it does, and the help line it shows."""

from __future__ import annotations

import curses

__all__ = ("BINDINGS", "action_for", "help_lines")

_ENTER = (10, 13, curses.KEY_ENTER)

#: (keys, action, help). The first key of each entry is the one shown in the help.
BINDINGS: tuple[tuple[tuple[int | str, ...], str, str], ...] = (
    (("j", curses.KEY_DOWN), "down", "select the next task"),
    (("k", curses.KEY_UP), "up", "select the previous task"),
    ((curses.KEY_NPAGE, " PgDn"), "page_down", "next page"),
    ((curses.KEY_PPAGE,), "page_up", "previous page"),
    (("g", curses.KEY_HOME), "top", "newest task"),
    (("G", curses.KEY_END), "bottom", "oldest task"),
    ((*_ENTER, "i"), "info", "task details (Enter or i)"),
    (("t",), "traceback", "the task's traceback"),
    (("r",), "result", "the task's result"),
    (("c",), "revoke", "revoke the selected task (asks first)"),
    (("l",), "rate_limit", "set a rate limit for the selected task's name"),
    (("/",), "filter", "filter by a pattern over name, uuid and worker"),
    (("f",), "only_failed", "show only failed tasks (again: all)"),
    (("a",), "only_active", "show only active tasks (again: all)"),
    (("w",), "workers", "workers view (again: tasks)"),
    ((" ",), "pause", "pause the display (events are still consumed)"),
    (("?", "h"), "help", "this help"),
    ((27, curses.KEY_BACKSPACE, 127), "back", "back to the task list"),
    (("q", 3), "quit", "quit (or Ctrl-C)"),
)


def _code(key: int | str) -> int | None:
    if isinstance(key, int):
        return key
    return ord(key) if len(key) == 1 else None


_ACTIONS = {code: action for keys, action, _ in BINDINGS for key in keys
            if (code := _code(key)) is not None}


def action_for(key: int) -> str | None:
    """Return the action bound to a key code, if any."""
    return _ACTIONS.get(key)


def _label(key: int | str) -> str:
    if isinstance(key, str):
        return {" ": "space"}.get(key, key.strip())
    names = {curses.KEY_DOWN: "Down", curses.KEY_UP: "Up", curses.KEY_NPAGE: "PgDn",
             curses.KEY_PPAGE: "PgUp", curses.KEY_HOME: "Home", curses.KEY_END: "End",
             27: "Esc", 3: "Ctrl-C", 10: "Enter"}
    return names.get(key, "")


def help_lines() -> list[str]:
    """Return one line per binding: its keys, then what it does."""
    lines = []
    for keys, _, text in BINDINGS:
        labels = [label for label in dict.fromkeys(_label(k) for k in keys) if label]
        lines.append(f"{'/'.join(labels[:3]):<14} {text}")
    return lines
