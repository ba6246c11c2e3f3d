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
            events.append(receiver.event_from_message(event, now=lambda: record["recv_time"])[1])  # noqa: B023
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
    for mine, celery in zip(ours, theirs, strict=True):
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


def test_say_writes_one_flushed_line_as_celerys_does():
    from celery.events.dumper import Dumper as CeleryDumper
    theirs, ours = io.StringIO(), io.StringIO()
    CeleryDumper(out=theirs).say("-> evdump: starting capture...")
    Dumper(out=ours).say("-> evdump: starting capture...")
    assert ours.getvalue() == theirs.getvalue() == "-> evdump: starting capture...\n"


def test_say_never_passes_control_characters_to_the_terminal():
    out = io.StringIO()
    Dumper(out=out).say("w\x1b[2J\nforged line \u202e\x9b")
    assert out.getvalue() == "w\\x1b[2J\\nforged line \\u202e\\x9b\n"


def test_format_task_event_says_what_celerys_says():
    from datetime import datetime, timezone

    from celery.events.dumper import Dumper as CeleryDumper
    when = datetime.fromtimestamp(1700000000.25, timezone.utc)
    calls = [
        ("w1@h", when, "task-succeeded", "tasks.add(u1) args=(1, 2) kwargs={}",
         {"result": "3", "runtime": 0.5, "clock": 7}),
        ("w1@h", when, "task-started", "", {}),
        ("w2@h", when, "Task-Failed", "", {"exception": "KeyError('x')", "pid": 12}),
        ("w2@h", 1.5, "task-custom-thing", "n(u) args=() kwargs={}", {"z": None, "a": [1]}),
    ]
    for args in calls:
        theirs, ours = io.StringIO(), io.StringIO()
        CeleryDumper(out=theirs).format_task_event(*args)
        Dumper(out=ours).format_task_event(*args)
        assert ours.getvalue() == theirs.getvalue()
    ours = io.StringIO()
    Dumper(out=ours).format_task_event("w\x1b", when, "task-failed", "t\n",
                                       {"traceback": "Traceback\n  \x07"})
    assert ours.getvalue().count("\n") == 1 and "\x1b" not in ours.getvalue()
    assert "\x07" not in ours.getvalue()


def test_a_subclass_overriding_format_task_event_gets_celerys_arguments():
    from celery.events import dumper as celery_dumper

    def recording(base):
        class Recording(base):
            def __init__(self, out):
                super().__init__(out=out)
                self.calls = []

            def format_task_event(self, hostname, timestamp, type, task, event):
                self.calls.append((hostname, timestamp, type, task, dict(event)))
                super().format_task_event(hostname, timestamp, type, task, event)
        return Recording

    events = prepared_events()
    celery_dumper.TASK_NAMES.clear()
    theirs_out, ours_out = io.StringIO(), io.StringIO()
    theirs, ours = recording(celery_dumper.Dumper)(theirs_out), recording(Dumper)(ours_out)
    for event in events:
        theirs.on_event(dict(event))
        ours.on_event(dict(event))
    assert len(ours.calls) > 300
    assert ours.calls == theirs.calls
    celery_lines, our_lines_ = theirs_out.getvalue().split("\n"), ours_out.getvalue().split("\n")
    assert len(our_lines_) <= len(celery_lines)  # Celery's tracebacks span several lines
    assert our_lines_[:20] == celery_lines[:20]


def test_every_dump_line_goes_through_say():
    said = []

    class Collecting(Dumper):
        def say(self, msg):
            said.append(msg)

    events = prepared_events()
    dumper = Collecting(out=io.StringIO())
    for event in events:
        dumper.on_event(dict(event))
    assert len(said) == len(events) == dumper.printed
    assert dumper.out.getvalue() == ""


@pytest.mark.parametrize(("types", "tasks", "json_lines", "keys"), [
    ((), (), False, ("#",)),
    (("task-failed",), (), True, ("task.failed", "task.multi")),
    # human lines name the task, from its task-received or task-sent
    (("task-failed",), (), False, ("task.failed", "task.received", "task.sent", "task.multi")),
    (("task-failed",), ("proj.*",), True, ("task.failed", "task.received", "task.sent", "task.multi")),
    (("worker-*",), (), False, ("worker.#",)),
    (("task-fail*",), (), False, ("task.#",)),
])
def test_dump_binds_the_wanted_types_and_what_names_their_tasks(types, tasks, json_lines, keys):
    from evtools.dump.dumper import dump_binding_keys
    assert dump_binding_keys(types, tasks, json_lines) == keys


def test_a_dump_that_records_binds_every_event():
    from evtools.dump.dumper import dump_binding_keys
    assert dump_binding_keys(["task-failed"], recording=True) == ("#",)
