"""Logging for the command line: one handler, to stderr or a log file."""

from __future__ import annotations

import logging
import sys

from .errors import ConfigurationError, EvtoolsError

__all__ = ("setup_logging", "LOG_FORMAT")

LOG_FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s] %(name)s: %(message)s"


def setup_logging(level: str | int | None = None, logfile: str | None = None) -> logging.Handler:
    """Send log records at ``level`` (default WARNING) and above to ``logfile`` or stderr."""
    if isinstance(level, str) or level is None:
        level = (level or "WARNING").upper()
        if not isinstance(logging.getLevelName(level), int):
            raise ConfigurationError(f"unknown log level {level!r}: use DEBUG, INFO, WARNING, "
                                     "ERROR or CRITICAL")
    handler: logging.Handler
    if logfile:
        try:
            handler = logging.FileHandler(logfile, encoding="utf-8")
        except OSError as exc:
            raise EvtoolsError(f"cannot open log file {logfile}: {exc.strerror}") from None
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
