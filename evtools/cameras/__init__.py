"""Cameras that ship with evtools: ``--camera evtools.cameras.SQLiteCamera`` and friends."""

from __future__ import annotations

from .jsonlines import JSONLinesCamera
from .sqlite import SQLiteCamera

__all__ = ("JSONLinesCamera", "SQLiteCamera")
