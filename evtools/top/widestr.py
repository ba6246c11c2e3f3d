"""Text as a terminal shows it: cell widths of wide and combining characters, safe clipping."""

from __future__ import annotations

import unicodedata
from functools import lru_cache

from ..textsafe import escape_text

__all__ = ("char_width", "text_width", "clip", "pad", "safe")


@lru_cache(maxsize=4096)
def char_width(char: str) -> int:
    """Return how many cells ``char`` takes: 0 (combining, zero-width), 1, or 2 (wide)."""
    if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def text_width(text: str) -> int:
    """Return the cells ``text`` takes."""
    if text.isascii():
        return len(text)
    return sum(char_width(c) for c in text)


def clip(text: str, width: int) -> str:
    """Return the longest start of ``text`` that fits in ``width`` cells (never half a wide char)."""
    if width <= 0:
        return ""
    if text.isascii():
        return text[:width]
    used = 0
    for index, char in enumerate(text):
        cells = char_width(char)
        if used + cells > width:
            return text[:index]
        used += cells
    return text


def pad(text: str, width: int) -> str:
    """Clip ``text`` to ``width`` cells and pad it with spaces to exactly that width."""
    clipped = clip(text, width)
    return clipped + " " * (width - text_width(clipped))


def safe(value: object) -> str:
    """Return ``value`` as text with every control character escaped (nothing reaches the tty)."""
    return escape_text(value if isinstance(value, str) else str(value))
