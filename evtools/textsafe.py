"""Make text from events safe for a terminal: control characters become visible escapes."""

from __future__ import annotations

import re

__all__ = ("escape_text", "escape_json", "UNSAFE_CHARACTERS")

#: C0 and C1 controls, DEL, line/paragraph separators, BiDi embeddings, overrides and
#: isolates, and lone surrogates (which cannot even be encoded to UTF-8).
UNSAFE_CHARACTERS = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _escape_json_char(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def escape_text(text: str) -> str:
    """Return ``text`` with every unsafe character written as an escape (``\\n``, ``\\x1b``, ``\\u202e``)."""
    if UNSAFE_CHARACTERS.search(text) is None:
        return text
    return UNSAFE_CHARACTERS.sub(_escape_char, text)


def escape_json(text: str) -> str:
    """Return JSON text with unsafe characters as ``\\uXXXX`` escapes (still valid JSON)."""
    if UNSAFE_CHARACTERS.search(text) is None:
        return text
    return UNSAFE_CHARACTERS.sub(_escape_json_char, text)
