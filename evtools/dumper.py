"""``celery.events.dumper``'s import path: the dump view lives in :mod:`evtools.dump`."""

from .dump.dumper import HUMAN_TYPES, Dumper, format_human, format_json, humanize_type

__all__ = ("Dumper", "format_human", "format_json", "humanize_type", "HUMAN_TYPES")
