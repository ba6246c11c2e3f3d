"""The dump view: one line per event, Celery's human format or JSON lines."""

from .dumper import Dumper, format_human, format_json

__all__ = ("Dumper", "format_human", "format_json")
