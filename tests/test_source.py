"""Event sources: replaying a recording at its pace, and the live source's errors."""

import io
import json
import time

import pytest

from evtools.config import Settings
from evtools.errors import BrokerError
from evtools.source import LiveSource, ReplaySource


def recording(*offsets):
    return io.StringIO("".join(
        json.dumps({"type": "worker-heartbeat", "hostname": "h", "clock": n,
                    "timestamp": 100.0 + offset, "local_received": 1000.0 + offset}) + "\n"
        for n, offset in enumerate(offsets, 1)))


def test_replay_keeps_the_original_pace_scaled_by_speed():
    waits = []
    source = ReplaySource(recording(0, 2, 5), speed=2.0, sleep=waits.append)
    seen = []
    source.run(seen.append)
    assert [e["clock"] for e in seen] == [1, 2, 3]
    assert len(waits) == 2
    assert waits[0] == pytest.approx(1.0, abs=0.05) and waits[1] == pytest.approx(2.5, abs=0.05)


def test_speed_zero_replays_as_fast_as_possible():
    waits = []
    ReplaySource(recording(0, 100, 200), speed=0, sleep=waits.append).run(lambda e: None)
    assert waits == []


def test_real_time_replay_takes_the_recorded_time():
    started = time.monotonic()
    ReplaySource(recording(0, 0.3), speed=1.0).run(lambda e: None)
    assert time.monotonic() - started >= 0.25


def test_bad_lines_are_counted_and_the_rest_replayed():
    stream = io.StringIO('{"type": "a"}\nnot json\n[1]\n\n{"type": "b", "clock": "x"}\n{"type": "c"}\n')
    source = ReplaySource(stream, speed=0)
    seen = []
    source.run(seen.append)
    assert [e["type"] for e in seen] == ["a", "c"]
    assert source.dropped == {"not-json": 1, "not-an-object": 1, "bad-field:clock": 1}


def test_stop_ends_a_replay():
    source = ReplaySource(recording(0, 1, 2, 3), speed=0)
    seen = []

    def handler(event):
        seen.append(event)
        source.stop()
    source.run(handler)
    assert len(seen) == 1


def test_live_source_names_an_unreachable_broker():
    source = LiveSource(Settings(broker_url="amqp://guest:pw@127.0.0.1:1//"))
    with pytest.raises(BrokerError, match=r"cannot connect to amqp://guest:\*\*@127.0.0.1:1//"):
        source.run(lambda e: None)
    assert source.url == "amqp://guest:**@127.0.0.1:1//"


def test_deeply_nested_lines_are_counted_as_malformed_and_the_rest_replayed(caplog):
    stream = io.StringIO('{"type": "a"}\n' + "[" * 100000 + "]" * 100000 + "\n"
                         + '{"a":' * 50000 + "1" + "}" * 50000 + '\n{"type": "b"}\n')
    source = ReplaySource(stream, speed=0)
    seen = []
    source.run(seen.append)
    assert [e["type"] for e in seen] == ["a", "b"]
    assert source.dropped == {"not-json": 2}
    assert len([r for r in caplog.records if "skipping line" in r.getMessage()]) == 1
