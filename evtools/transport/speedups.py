"""JSON for the hot path: orjson when ``evtools[speedups]`` installed it and it works, else the standard library.

Decided once per process, as the read-ahead transports are: :func:`problem` imports orjson,
checks its version and has it decode and encode a sample; when that fails, or
``EVTOOLS_SPEEDUPS=0`` is set, the standard library's :mod:`json` is used, silently (one
DEBUG line, logger ``evtools.transport``; ``evtools --version`` says which).

Decoding gives the same values either way. orjson is tried first and the standard library
decides whenever orjson refuses a text (NaN and Infinity, numbers that overflow a double,
invalid UTF-8, surrogates, a BOM, UTF-16/32, any syntax error) or could decode it
differently: orjson turns integers beyond 64 bits into floats, so a text with a run of 19
digits goes to the standard library, and so does one that may nest deeper than the
standard library's recursion limit allows.

Encoding (:func:`dumps_line`: the dump's ``--json`` and ``--record``, the JSON-lines camera)
writes the same values; with orjson the text is compact (no space after ``,`` and ``:``) and
a float below 1e-4 is written in full (``0.00001``, not ``1e-05``). NaN and infinities
become null either way. What orjson cannot write (integers beyond 64 bits, lone surrogates,
keys that are not strings) is written by the standard library.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable
from functools import cache
from importlib import metadata
from typing import Any

__all__ = ("SPEEDUPS_VAR", "body_loads", "dumps_line", "envelope_loads", "loads_standard",
           "problem", "report")

logger = logging.getLogger("evtools.transport")

#: Set to 0 to use the standard library's json even where orjson would work.
SPEEDUPS_VAR = "EVTOOLS_SPEEDUPS"

#: The orjson releases evtools was tested with: (lowest, first one not accepted).
ORJSON_VERSIONS = ((3, 9), (4,))

#: First bytes of a JSON object or list (json.loads reads bytes starting so, with no NUL
#: after, as UTF-8).
_JSON_OPENERS = frozenset(b"{[")

#: Maps every digit to 0, keeps ``.``, ``e`` and ``E`` and turns every other byte into a space:
#: an integer literal of 19 digits or more then shows as a space followed by 19 zeros.
_NUMBER_SHAPES = bytes(48 if 48 <= byte <= 57 else byte if byte in b".eE" else 32
                       for byte in range(256))
_DIGIT_RUN = b"0" * 19
_BIG_INTEGER = b" " + _DIGIT_RUN

#: A text shorter than this cannot nest deep enough for the standard library's recursion
#: limit; a longer one with more brackets than ``_DEEP_BRACKETS`` is left to the standard library.
_DEEP_LENGTH = 1000
_DEEP_BRACKETS = 400


def loads_standard(body: bytes | str) -> Any:
    """Decode a message body with the standard library, as evtools' receiver always has.

    Bytes that start like a JSON object or list skip ``json.loads``' encoding detection (they
    can only be UTF-8); anything else, UTF-16 and UTF-32 included, goes through it.
    """
    if type(body) is bytes and len(body) > 1 and body[0] in _JSON_OPENERS and body[1]:
        body = body.decode("utf-8", "surrogatepass")
    return json.loads(body)


def _needs_standard(data: bytes) -> bool:
    """True when orjson might decode ``data`` differently from the standard library."""
    shapes = data.translate(_NUMBER_SHAPES)
    if _BIG_INTEGER in shapes or shapes.startswith(_DIGIT_RUN):
        return True
    return len(data) > _DEEP_LENGTH and data.count(b"[") + data.count(b"{") > _DEEP_BRACKETS


def _fast_body_loads(orjson_loads: Callable[[bytes], Any]) -> Callable[[bytes | str], Any]:
    def loads(body: bytes | str) -> Any:
        """Decode a message body with orjson, or the standard library where they could differ."""
        if type(body) is not bytes or _needs_standard(body):
            return loads_standard(body)
        try:
            return orjson_loads(body)
        except (ValueError, RecursionError):  # orjson.JSONDecodeError is a ValueError
            return loads_standard(body)
    return loads


def _standard_envelope_loads(payload: bytes) -> Any:
    return json.loads(payload.decode(errors="replace"))


def _fast_envelope_loads(orjson_loads: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def loads(payload: bytes) -> Any:
        """Decode a Redis message envelope with orjson, else as the standard library would."""
        try:
            return orjson_loads(payload)
        except (ValueError, RecursionError):
            return _standard_envelope_loads(payload)
    return loads


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities (in lists and dicts too) replaced by None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def _standard_dumps(value: Any, default: Callable[[Any], Any] | None = None) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, default=default)
    except ValueError:
        return json.dumps(_finite(value), ensure_ascii=False, allow_nan=False, default=default)


def _fast_dumps(orjson: Any) -> Callable[..., str]:
    dumps, option = orjson.dumps, orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
    refused = (TypeError, ValueError)  # orjson.JSONEncodeError is a TypeError

    def dumps_fast(value: Any, default: Callable[[Any], Any] | None = None) -> str:
        """``value`` as one line of compact JSON by orjson, or by the standard library."""
        try:
            return dumps(value, default=default, option=option).decode()
        except refused:
            return _standard_dumps(value, default)
    return dumps_fast


def _off() -> bool:
    return os.environ.get(SPEEDUPS_VAR, "").strip() == "0"


def _release(version: str) -> tuple[int, ...]:
    numbers = []
    for part in version.split("."):
        if not part.isdigit():
            break
        numbers.append(int(part))
    return tuple(numbers)


#: What the probe has orjson decode and encode: every JSON type, escapes, a nested list.
_SAMPLE = (b'{"type": "task-succeeded", "uuid": "9c1d\\u00e9", "clock": 12, "pid": -4,'
           b' "timestamp": 1795627920.9758115, "runtime": 0.25, "ok": true, "gone": null,'
           b' "loadavg": [0.04, [1e-7, 2]], "text": "tab\\t\\"quote\\" \\ud83d\\ude00"}')


def _version_of(orjson: Any) -> str:
    """The version of the orjson module imported (the installed distribution's if it does not say)."""
    version = getattr(orjson, "__version__", None)
    if isinstance(version, str):
        return version
    try:
        return metadata.version("orjson")
    except metadata.PackageNotFoundError:
        return "0"


@cache
def _orjson() -> tuple[Any, str | None]:
    """orjson, or None and why it cannot be used."""
    if _off():
        return None, f"{SPEEDUPS_VAR}=0"
    try:
        import orjson
    except ImportError:
        return None, "orjson is not installed (pip install 'evtools[speedups]')"
    except Exception as exc:  # noqa: BLE001 - a broken install means "do not use"
        return None, f"importing orjson failed ({type(exc).__name__}: {exc})"
    version = _version_of(orjson)
    lowest, above = ORJSON_VERSIONS
    if not lowest <= _release(version) < above:
        return None, (f"orjson {version} is outside the tested range "
                      f">={'.'.join(map(str, lowest))},<{'.'.join(map(str, above))}")
    try:
        expected = json.loads(_SAMPLE)
        if orjson.loads(_SAMPLE) != expected or json.loads(orjson.dumps(expected)) != expected:
            return None, f"orjson {version} decodes or encodes differently from json"
    except Exception as exc:  # noqa: BLE001 - whatever fails, the standard library works
        return None, f"orjson {version} failed its check ({type(exc).__name__}: {exc})"
    logger.debug("speedups: orjson %s decodes and encodes JSON", version)
    return orjson, None


def problem() -> str | None:
    """Why orjson is not used here; None when it is. Decided once per process."""
    module, reason = _orjson()
    if reason is not None:
        _say_once(reason)
    return reason


@cache
def _say_once(reason: str) -> None:
    logger.debug("speedups: the standard library's json is used: %s", reason)


@cache
def body_loads() -> Callable[[bytes | str], Any]:
    """The function that decodes message bodies here (raises ValueError, TypeError or RecursionError)."""
    module, _ = _orjson()
    problem()
    return loads_standard if module is None else _fast_body_loads(module.loads)


@cache
def envelope_loads() -> Callable[[bytes], Any]:
    """The function that decodes the JSON envelope of a Redis message (payload bytes)."""
    module, _ = _orjson()
    problem()
    return _standard_envelope_loads if module is None else _fast_envelope_loads(module.loads)


@cache
def _dumps() -> Callable[..., str]:
    module, _ = _orjson()
    problem()
    return _standard_dumps if module is None else _fast_dumps(module)


def dumps_line(value: Any, default: Callable[[Any], Any] | None = None) -> str:
    """``value`` as one line of JSON (non-ASCII as is, NaN and infinities as null).

    ``default`` turns what JSON cannot hold into something it can, as in :func:`json.dumps`.
    """
    return _dumps()(value, default)


def _hiredis_in_use() -> str | None:
    """The version of hiredis when redis-py parses replies with it here, else None."""
    try:
        from redis.utils import HIREDIS_AVAILABLE
    except Exception:  # noqa: BLE001 - no redis-py (or a broken one): no hiredis either
        return None
    if not HIREDIS_AVAILABLE:
        return None
    try:
        return metadata.version("hiredis")
    except metadata.PackageNotFoundError:
        return "(version unknown)"


def report() -> list[str]:
    """What ``evtools --version`` says about the speedups: one line each."""
    module, reason = _orjson()
    lines = [f"speedups: JSON by orjson {_version_of(module)}" if module is not None
             else f"speedups: JSON by the standard library (orjson not used: {reason})"]
    hiredis = _hiredis_in_use()
    if hiredis is None:
        lines.append("speedups: Redis replies by redis-py's own parser (no usable hiredis)")
    else:
        lines.append(f"speedups: Redis replies by hiredis {hiredis}, except event messages on "
                     "the read-ahead Redis transport, which reads them itself")
    return lines
