"""evtools[speedups]: the same events with orjson as with the standard library, and a quiet fallback.

The parity tests run each case through both decoders in one process (orjson comes with the
test extra; where it is missing, as in the oldest-versions leg, they are skipped and the
fallback tests still run). The end-to-end tests run the dump three ways, with orjson, with
``EVTOOLS_SPEEDUPS=0`` and with orjson made unimportable, and compare what they print.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from base64 import b64encode
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kombu import Connection, Producer
from kombu.utils.json import dumps as kombu_dumps

from evtools.errors import MalformedEvent
from evtools.event import get_exchange
from evtools.receiver import EventReceiver, check_event, decode_body
from evtools.transport import speedups
from tests.integration.cli_process import EvtoolsProcess

CORPUS = Path("/work/shared/corpus/celery-redis.jsonl")
REPO = Path(__file__).resolve().parents[2]

#: Makes ``import orjson`` fail, as it does where evtools[speedups] is not installed.
NO_ORJSON = "import sys\nsys.modules['orjson'] = None\n"

#: An orjson that imports but decodes wrongly: the probe's check must turn it down.
BROKEN_ORJSON = """\
__version__ = "3.10.0"
OPT_PASSTHROUGH_DATETIME = OPT_PASSTHROUGH_DATACLASS = 0
def loads(data):
    return {"type": "wrong"}
def dumps(value, default=None, option=0):
    return b"{}"
"""


def require_orjson() -> Any:
    """orjson, which the test extra installs: a test that needs it fails without it."""
    import orjson

    return orjson


def fast_loads() -> Any:
    """The orjson body decoder (orjson comes with the test extra)."""
    orjson = require_orjson()
    return speedups._fast_body_loads(orjson.loads)


def outcome(loads: Any, body: bytes | str) -> tuple[Any, ...]:
    """What the receiver makes of ``body``: the events (types kept apart) or the drop's kind and text."""
    try:
        decoded = decode_body("application/json", body, loads)
    except MalformedEvent as exc:
        return ("dropped", exc.kind, str(exc))
    return ("decoded", typed(decoded))


def typed(value: Any) -> Any:
    """``value`` with every number's type and NaN spelled out, so that 1 != 1.0 and NaN == NaN."""
    if isinstance(value, dict):
        return {"dict": [(key, typed(item)) for key, item in value.items()]}
    if isinstance(value, list):
        return {"list": [typed(item) for item in value]}
    if isinstance(value, float) and math.isnan(value):
        return ("float", "nan")
    return (type(value).__name__, value)


#: The cases where orjson and json differ, each with what the receiver must do (as it did
#: before speedups): decode as the standard library does, or drop as not-json.
EDGE_CASES = {
    # json accepts NaN and infinities (orjson refuses them): decoded; check_event drops a
    # non-finite timestamp or utcoffset, other fields keep them
    "nan": b'{"type": "x", "runtime": NaN}',
    "infinity": b'{"type": "x", "runtime": Infinity, "other": -Infinity}',
    "overflowing float": b'{"type": "x", "runtime": 1e400}',
    # orjson turns integers beyond 64 bits into floats: the standard library decodes them
    "integer above u64": b'{"type": "x", "clock": 18446744073709551616}',
    "integer below i64": b'{"type": "x", "n": -9223372036854775809}',
    "integer of 30 digits": b'{"type": "x", "n": 123456789012345678901234567890}',
    "top-level big integer": b"123456789012345678901234567890",
    "u64 max": b'{"type": "x", "n": 18446744073709551615}',
    "long fraction": b'{"type": "x", "runtime": 0.0027197279999882085}',
    "many digits": b'{"type": "x", "runtime": 0.1000000000000000055511151231257827021181583404541015625}',
    # both keep the last value of a duplicate key, at the first key's place
    "duplicate keys": b'{"type": "x", "a": 1, "type": "y", "a": 2}',
    # invalid UTF-8 is not JSON; surrogates written as UTF-8 bytes json reads as lone surrogates
    "invalid utf-8": b'{"type": "x", "a": "\xff"}',
    "surrogate bytes": b'{"type": "x", "a": "\xed\xa0\x80"}',
    "lone high surrogate escape": b'{"type": "x", "a": "\\ud800"}',
    "lone low surrogate escape": b'{"type": "x", "a": "\\udc00z"}',
    "surrogate pair escape": b'{"type": "x", "a": "\\ud83d\\ude00"}',
    # json.loads detects the encoding of bytes: a UTF-8 BOM, UTF-16 and UTF-32 are decoded
    "utf-8 bom": b'\xef\xbb\xbf{"type": "x"}',
    "utf-16": '{"type": "x"}'.encode("utf-16"),
    "utf-16-le": '{"type": "x"}'.encode("utf-16-le"),
    "utf-32": '{"type": "x"}'.encode("utf-32"),
    "text body": '{"type": "x", "a": "\\u00e9"}',
    "text body with a lone surrogate": '{"type": "x", "a": "\ud800"}',
    # nesting: orjson stops at 1024 levels, json at the interpreter's recursion limit
    "nested 300": b'{"type": "x", "a": ' + b"[" * 300 + b"]" * 300 + b"}",
    "nested 990": b'{"type": "x", "a": ' + b"[" * 990 + b"]" * 990 + b"}",
    "nested 1100": b'{"type": "x", "a": ' + b"[" * 1100 + b"]" * 1100 + b"}",
    # syntax errors of every sort are dropped with json's message
    "control character": b'{"type": "x\x01"}',
    "trailing data": b'{"type": "x"} x',
    "leading zero": b'{"type": "x", "n": 01}',
    "empty": b"",
    "nul after brace": b"{\x00",
    "escaped nul": b'{"type": "x", "a": "\\u0000"}',
    "negative zero": b'{"type": "x", "a": -0, "b": -0.0}',
    "exponent integer": b'{"type": "x", "a": 1E2}',
    "smallest float": b'{"type": "x", "a": 5e-324}',
    "list body": b'[{"type": "x"}, {"type": "y", "clock": 3}]',
}


@pytest.mark.parametrize("body", EDGE_CASES.values(), ids=EDGE_CASES.keys())
def test_every_edge_case_decodes_with_orjson_as_with_the_standard_library(body):
    assert outcome(fast_loads(), body) == outcome(speedups.loads_standard, body)


def test_the_edge_cases_still_show_the_differences_they_guard_against():
    orjson = require_orjson()
    assert orjson.loads(EDGE_CASES["integer above u64"])["clock"] == 2.0 ** 64  # a float
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(EDGE_CASES["nan"])
    assert speedups.loads_standard(EDGE_CASES["integer above u64"])["clock"] == 2 ** 64


def corpus_bodies() -> list[bytes]:
    """The raw bodies real Celery workers sent (the test fails where the corpus is not laid out)."""
    if not CORPUS.exists():
        pytest.fail(f"{CORPUS} is not here (the corpus in ../shared)", pytrace=False)
    with CORPUS.open() as lines:
        return [json.loads(line)["body_raw"].encode() for line in lines if line.strip()]


def receiver_events(loads: Any, bodies: list[bytes]) -> list[Any]:
    """The events a receiver hands its handler for these bodies, decoded with ``loads``."""
    seen: list[dict[str, Any]] = []
    receiver = EventReceiver(Connection("memory://"), handlers={"*": seen.append})
    receiver._loads = loads
    times = iter(range(len(bodies) * 10))
    for body in bodies:
        for event in decode_and_check(receiver, body):
            receiver.process(*receiver.event_from_message(event, now=lambda: float(next(times))))
    return [typed(event) for event in seen]


def decode_and_check(receiver: EventReceiver, body: bytes) -> list[dict[str, Any]]:
    decoded = decode_body("application/json", body, receiver._loads)
    return [check_event(item) for item in (decoded if isinstance(decoded, list) else [decoded])]


def test_the_corpus_gives_the_same_events_with_orjson():
    bodies = corpus_bodies()
    with_orjson = receiver_events(fast_loads(), bodies)
    assert len(with_orjson) == 502
    assert with_orjson == receiver_events(speedups.loads_standard, bodies)


def test_the_corpus_envelopes_decode_the_same_with_orjson():
    orjson = require_orjson()
    if not CORPUS.exists():
        pytest.fail(f"{CORPUS} is not here (the corpus in ../shared)", pytrace=False)
    fast = speedups._fast_envelope_loads(orjson.loads)
    with CORPUS.open() as lines:
        for line in lines:
            record = json.loads(line)
            envelope = kombu_dumps({
                "body": b64encode(record["body_raw"].encode()).decode(),
                "content-encoding": record["content_encoding"],
                "content-type": record["content_type"], "headers": record["headers"],
                "properties": record["properties"]}).encode()
            assert typed(fast(envelope)) == typed(speedups._standard_envelope_loads(envelope))


@pytest.mark.parametrize("payload", [
    b'{"body": "e30=", "properties": {"priority": NaN}}', b'{"body": "\xff"}',
    b'{"body": "\xed\xa0\x80"}', b'{"n": 123456789012345678901234567890}', b"{", b"",
])
def test_odd_envelopes_decode_or_fail_as_with_the_standard_library(payload):
    orjson = require_orjson()

    def result(loads: Any) -> Any:
        try:
            return typed(loads(payload))
        except ValueError as exc:
            return ("failed", type(exc).__name__, str(exc))

    envelope = result(speedups._standard_envelope_loads)
    if payload.startswith(b'{"n"'):  # the envelope's numbers reach no event: a float is fine
        assert "dict" in result(speedups._fast_envelope_loads(orjson.loads))
    else:
        assert result(speedups._fast_envelope_loads(orjson.loads)) == envelope


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2 ** 80), max_value=2 ** 80)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(value=json_values, ascii_only=st.booleans())
def test_any_json_text_decodes_with_orjson_as_with_the_standard_library(value, ascii_only):
    text = json.dumps({"type": "x", "value": value}, ensure_ascii=ascii_only)
    body = text.encode("utf-8", "surrogatepass")
    assert outcome(fast_loads(), body) == outcome(speedups.loads_standard, body)


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=40), cut=st.integers(min_value=0, max_value=60))
def test_any_bytes_decode_or_drop_with_orjson_as_with_the_standard_library(body, cut):
    spliced = (b'{"type": "x", "n": 1' + body + b"}")[:cut + 18]
    assert outcome(fast_loads(), body) == outcome(speedups.loads_standard, body)
    assert outcome(fast_loads(), spliced) == outcome(speedups.loads_standard, spliced)


# -- writing ------------------------------------------------------------------------------

WRITTEN = [
    {"type": "task-succeeded", "uuid": "u1", "result": "'caf\u00e9 \u202e'", "runtime": 0.25,
     "timestamp": 1795627920.9758115, "clock": 12, "ok": True, "none": None},
    {"type": "x", "nested": [1, [2.5, {"k": "tab\tnew\nline\x00\x7f"}]], "emoji": "\U0001f600"},
    {"type": "x", "nan": float("nan"), "inf": [float("inf"), float("-inf")]},
    {"type": "x", "big": 2 ** 70, "small": 1e-05, "huge": 1e22},
    {"type": "x", "lone": "\ud800"},
    {1: "integer key", "type": "x"},
]


def fast_dumps() -> Any:
    """The orjson line writer (orjson comes with the test extra)."""
    return speedups._fast_dumps(require_orjson())


@pytest.mark.parametrize("value", WRITTEN)
def test_a_line_written_by_orjson_holds_the_same_values(value):
    fast, standard = fast_dumps()(value), speedups._standard_dumps(value)
    assert "\n" not in fast
    assert typed(json.loads(fast)) == typed(json.loads(standard))


def test_a_line_written_by_orjson_is_the_compact_form_of_the_standard_one():
    value = WRITTEN[0]
    assert fast_dumps()(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    assert speedups._standard_dumps(value) == json.dumps(value, ensure_ascii=False)
    # the documented differences: spacing, small floats in full; NaN is null in both
    assert fast_dumps()({"a": 1e-05, "n": float("nan")}) == '{"a":0.00001,"n":null}'
    assert speedups._standard_dumps({"a": 1e-05, "n": float("nan")}) == '{"a": 1e-05, "n": null}'


def test_what_orjson_cannot_write_is_written_by_the_standard_library():
    for value in WRITTEN[3:]:
        assert fast_dumps()(value) == speedups._standard_dumps(value)


def test_the_camera_default_applies_with_orjson():
    import datetime

    when = datetime.datetime(2026, 1, 2, 3, 4, 5)
    assert json.loads(fast_dumps()({"at": when}, default=str)) == {"at": str(when)}


# -- the probe and the fallback, in fresh interpreters ------------------------------------

def python(code: str, env: dict[str, str], pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    paths = [str(path) for path in (pythonpath, REPO) if path]
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env, "PYTHONPATH": os.pathsep.join(paths)})


PROBE = ("import logging, sys\n"
         "logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)\n"
         "from evtools.transport import speedups\n"
         "from evtools.receiver import decode_body\n"
         "print(speedups.body_loads() is speedups.loads_standard, speedups.problem())\n"
         "print(decode_body('application/json', b'{\"n\": 18446744073709551616}'))\n")


def test_speedups_switched_off_use_the_standard_library_and_say_so_at_debug_level():
    done = python(PROBE, {speedups.SPEEDUPS_VAR: "0"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["True EVTOOLS_SPEEDUPS=0", "{'n': 18446744073709551616}"]
    assert "the standard library's json is used: EVTOOLS_SPEEDUPS=0" in done.stderr


def test_without_orjson_the_standard_library_is_used_silently_above_debug(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(NO_ORJSON)
    done = python(PROBE.replace("DEBUG", "INFO"), {}, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "True orjson is not installed (pip install 'evtools[speedups]')"
    assert done.stderr == ""


def test_a_broken_orjson_is_turned_down_by_the_probe(tmp_path):
    (tmp_path / "orjson.py").write_text(BROKEN_ORJSON)
    done = python(PROBE, {}, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "True orjson 3.10.0 decodes or encodes differently from json", "{'n': 18446744073709551616}"]


def test_orjson_is_used_where_installed_and_says_so_at_debug_level():
    require_orjson()
    done = python(PROBE, {})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["False None", "{'n': 18446744073709551616}"]
    assert "speedups: orjson" in done.stderr


def test_version_says_which_json_is_used(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(NO_ORJSON)
    without = python("from evtools.cli import main; main(['--version'])", {}, tmp_path)
    assert "speedups: JSON by the standard library (orjson not used: orjson is not installed" \
        in without.stdout
    off = python("from evtools.cli import main; main(['--version'])", {speedups.SPEEDUPS_VAR: "0"})
    assert "orjson not used: EVTOOLS_SPEEDUPS=0" in off.stdout
    if speedups.problem() is None:
        on = python("from evtools.cli import main; main(['--version'])", {})
        assert "speedups: JSON by orjson " in on.stdout


# -- end to end: the same dump on a real broker, with and without --------------------------

#: Bodies published as they are (content type application/json): the edge cases a receiver
#: keeps or drops, between ordinary events.
RAW_BODIES = [
    b'{"type": "worker-online", "hostname": "w1@speedups", "clock": 1, "timestamp": 1.5, "utcoffset": 0}',
    b'{"type": "x-custom", "hostname": "w1@speedups", "clock": 18446744073709551616, "big": -9223372036854775809}',
    b'{"type": "x-custom", "hostname": "w1@speedups", "runtime": NaN, "other": -Infinity}',
    b'{"type": "x-custom", "hostname": "w1@speedups", "a": 1, "a": 2, "lone": "\\ud800"}',
    b'\xef\xbb\xbf{"type": "x-custom", "hostname": "w1@speedups", "bom": true}',
    '{"type": "x-custom", "hostname": "w1@speedups", "utf16": true}'.encode("utf-16"),
    b'{"type": "x-custom", "hostname": "w1@speedups", "bad": "\xff"}',
    b'[{"type": "task-received", "uuid": "t1", "hostname": "w1@speedups", "name": "caf\\u00e9"},'
    b' {"type": "task-succeeded", "uuid": "t1", "hostname": "w1@speedups", "runtime": 0.00001}]',
    b'{"type": "worker-offline", "hostname": "w1@speedups", "timestamp": 2.5, "utcoffset": 0}',
]

MODES = {
    "orjson": ({}, None),
    "switched-off": ({speedups.SPEEDUPS_VAR: "0"}, None),
    "not-installed": ({}, NO_ORJSON),
}


def publish_raw(url: str) -> None:
    with Connection(url) as connection:
        producer = Producer(connection.channel(), exchange=get_exchange(connection))
        for body in RAW_BODIES:
            producer.publish(body, routing_key="x.speedups", content_type="application/json",
                             content_encoding="binary")


def comparable(line: str) -> Any:
    """A JSON dump line as values, without the time it was received."""
    event = json.loads(line)
    event.pop("local_received", None)
    return typed(event)


@pytest.mark.broker
def test_the_dump_prints_the_same_events_with_and_without_speedups(broker_url, tmp_path):
    dumps = {}
    for mode, (env, sitecustomize) in MODES.items():
        folder = tmp_path / mode
        folder.mkdir()
        if sitecustomize:
            (folder / "sitecustomize.py").write_text(sitecustomize)
            env = {**env, "PYTHONPATH": os.pathsep.join([str(folder), str(REPO)])}
        dumps[mode] = EvtoolsProcess("events", "--dump", "--json", "-b", broker_url, "-l", "info", env=env)
    for dump in dumps.values():
        dump.wait_ready()
    publish_raw(broker_url)
    for dump in dumps.values():
        assert dump.wait_for('"worker-offline"', stream="stdout", timeout=30), dump.stderr
    assert [dump.terminate() for dump in dumps.values()] == [0, 0, 0]
    lines = {mode: [comparable(line) for line in dump.stdout] for mode, dump in dumps.items()}
    assert len(lines["orjson"]) == 9, dumps["orjson"].stdout  # the invalid UTF-8 body is dropped
    assert lines["switched-off"] == lines["orjson"]
    assert lines["not-installed"] == lines["orjson"]
    big = next(event for event in dumps["orjson"].stdout if '"big"' in event)
    assert "18446744073709551616" in big and "-9223372036854775809" in big
