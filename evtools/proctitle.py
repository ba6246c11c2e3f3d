"""Process titles (``evtools events:dump ...``), as Celery sets them, passwords hidden."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import setproctitle

from .transport.broker import mask_passwords

__all__ = ("set_process_title", "title_for")


def title_for(mode: str, argv: Sequence[str] | None = None, prefix: str | None = None) -> str:
    """Return the title of a mode: ``evtools events:<mode>`` (or ``prefix``) and the arguments."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("events", mode):
        args = args[1:]
    if prefix is None:
        prefix = "evtools demo" if mode == "demo" else f"evtools events:{mode}"
    return mask_passwords(" ".join([prefix, *args]))


def set_process_title(mode: str, argv: Sequence[str] | None = None,
                      prefix: str | None = None) -> str:
    """Set this process's title for ``mode`` (``dump``, ``top``, ``cam``); return it."""
    title = title_for(mode, argv, prefix)
    setproctitle.setproctitle(title)
    return title
