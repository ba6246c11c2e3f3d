"""The dump prints Celery's human format (control characters escaped) and JSON lines."""

import io
import json

import pytest

from evtools.dumper import Dumper, format_human, format_json, humanize_type
from evtools.filters import EventFilter
from evtools.textsafe import escape_text
from tests.celery_compare import corpus_messages, evtools_pair

RECORDS = corpus_messages()


def prepared_events():
    """Every corpus event as the receiver hands it to a handler."""
    receiver, _ = evtools_pair()
    events = []
    for record in RECORDS:
        body = json.loads(record["body_raw"])
        for event in body if isinstance(body, list) else [body]:
            events.append(receiver.event_from_message(event, now=lambda: record["recv_time"])[1])
    return events


def celery_lines(events):
    from celery.events import dumper as celery_dumper
    celery_dumper.TASK_NAMES.clear()
    out = io.StringIO()
    dumper = celery_dumper.Dumper(out=out)
    lines = []
    for event in events:
        dumper.on_event(dict(event))
        lines.append(out.getvalue().rstrip("\n"))
        out.seek(0)
        out.truncate()
    return lines


def our_lines(events, **options):
    out = io.StringIO()
    dumper = Dumper(out=out, **options)
    for event in events:
        dumper.on_event(dict(event))
    return out.getvalue().splitlines()


def test_every_corpus_event_prints_as_celerys_dumper_prints_it():
    events = prepared_events()
    theirs, ours = celery_lines(events), our_lines(events)
    assert len(ours) == len(theirs) == 502
    multiline = 0
    for mine, celery in zip(ours, theirs):
        if "\n" in celery:  # tracebacks: the one deliberate difference
            multiline += 1
            assert mine == escape_text(celery) and "\n" not in mine
        else:
            assert mine == celery
    assert multiline >= 5


def test_humanized_types():
    assert humanize_type("worker-online") == "started"
    assert humanize_type("worker-offline") == "shutdown"
    assert humanize_type("worker-heartbeat") == "heartbeat"
    assert humanize_type("Task-Succeeded") == "task succeeded"


def test_a_task_argument_cannot_forge_a_line_or_drive_the_terminal():
    forged = "(1,)\nw1@h [2026-01-01 00:00:00+00:00] task succeeded: fake"
    event = {"type": "task-received", "uuid": "u", "hostname": "w\x1b[2J", "timestamp": 0.0,
             "name": "n\u202etxt.exe", "args": forged, "kwargs": "{'k': '\x00\x07\x9b'}"}
    line = format_human(event)
    assert "\n" not in line and "\x1b" not in line and "\u202e" not in line
    assert "\\n" in line and "\\x1b" in line and "\\u202e" in line and "\\x00" in line
    assert "\\x9b" in line
    record = format_json(event)
    assert "\x1b" not in record and "\u202e" not in record and "\x9b" not in record
    assert json.loads(record) == event


def test_json_lines_carry_every_field_and_survive_odd_values():
    event = {"type": "task-succeeded", "uuid": "u", "result": "✓ ☃", "runtime": float("nan"),
             "nested": {"x": [float("inf"), 1]}, "bad": "\ud800"}
    record = json.loads(format_json(event))
    assert record["result"] == "✓ ☃" and record["runtime"] is None
    assert record["nested"] == {"x": [None, 1]}
    assert record["bad"] == "\ud800"
    format_json(event).encode("utf-8")  # a lone surrogate is escaped, so this cannot fail


def test_the_json_dump_is_parseable_line_by_line():
    events = prepared_events()
    lines = our_lines(events, json_lines=True)
    assert [json.loads(line) for line in lines] == events


def test_filters_apply_before_formatting_and_know_names_from_earlier_events():
    events = prepared_events()
    failed = our_lines(events, event_filter=EventFilter(types=["task-fail*"]))
    assert len(failed) == 5 and all(" task failed: " in line for line in failed)
    assert all("tasks." in line for line in failed if "does_not_exist" not in line)
    by_host = our_lines(events, event_filter=EventFilter(hostnames=["w3@*"]))
    assert by_host and all(line.startswith("w3@vm ") for line in by_host)
    flaky = our_lines(events, event_filter=EventFilter(tasks=["tasks.fla*"]))
    assert {line.split("] ")[1].split(":")[0] for line in flaky} >= {
        "task sent", "task received", "task started", "task retried", "task succeeded"}
    both = our_lines(events, event_filter=EventFilter(types=["task-succeeded"], tasks=["tasks.add"]))
    assert both and all("task succeeded" in line and "tasks.add(" in line for line in both)


@pytest.mark.parametrize("event", [
    {"type": "task-received"}, {"type": "task-started", "uuid": None}, {"type": "weird"},
    {"type": "task-sent", "uuid": "x", "timestamp": "not-a-time"}, {"type": "worker-online",
                                                                   "timestamp": 1e300},
])
def test_incomplete_events_still_print_one_line(event):
    line = format_human(event)
    assert "\n" not in line and line
    Dumper(out=io.StringIO()).on_event(event)
