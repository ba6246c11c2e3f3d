"""Escaping keeps terminal control out of the output and leaves ordinary text alone."""

import json

from evtools.textsafe import escape_json, escape_text


def test_ordinary_text_is_untouched():
    text = "tasks.add(1, 2) ünïcödé ☃ 🎉 back\\slash"
    assert escape_text(text) is text


def test_controls_become_visible_escapes():
    assert escape_text("a\nb\tc\rd") == "a\\nb\\tc\\rd"
    assert escape_text("\x1b[31mred\x07") == "\\x1b[31mred\\x07"
    assert escape_text("\x7f\x85\x9b") == "\\x7f\\x85\\x9b"
    assert escape_text("\u202eevil\u2066\u2028") == "\\u202eevil\\u2066\\u2028"
    assert escape_text("\ud83d") == "\\ud83d"


def test_json_escapes_stay_valid_json():
    text = json.dumps({"v": "\x85\u202e\u2028"}, ensure_ascii=False)
    escaped = escape_json(text)
    assert "\u202e" not in escaped and json.loads(escaped) == {"v": "\x85\u202e\u2028"}
