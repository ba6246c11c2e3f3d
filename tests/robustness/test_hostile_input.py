"""Whatever arrives on the event exchange, capture goes on: bad input is counted, good applied."""

import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kombu import Connection

from evtools.dumper import format_human, format_json
from evtools.receiver import EventReceiver
from evtools.state import State
from evtools.textsafe import UNSAFE_CHARACTERS

scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner,
                                                                       max_size=4)), max_leaves=12)
FIELDS = ["type", "uuid", "hostname", "timestamp", "clock", "utcoffset", "local_received", "name",
          "args", "result", "parent_id", "root_id", "freq", "heartbeats", "children", "state",
          "info", "_newest", "worker", "traceback"]
event_like = st.fixed_dictionaries({}, optional={
    key: values for key in FIELDS}) | st.fixed_dictionaries({
        "type": st.sampled_from(["task-sent", "task-received", "task-started", "task-succeeded",
                                 "task-failed", "task-retried", "task-revoked", "task-rejected",
                                 "task-custom", "worker-online", "worker-heartbeat",
                                 "worker-offline", "custom-thing", "task", "-", ""]),
        "uuid": st.one_of(st.text(max_size=8), values),
        "hostname": st.one_of(st.text(max_size=8), values),
    }, optional={key: values for key in FIELDS if key not in ("type", "uuid", "hostname")})
bodies = st.one_of(values, event_like, st.lists(st.one_of(event_like, values), max_size=5))

GOOD = [{"type": "task-received", "uuid": "good", "hostname": "w@h", "clock": 1,
         "timestamp": 1.0, "name": "ok", "args": "()", "kwargs": "{}"},
        {"type": "task-succeeded", "uuid": "good", "hostname": "w@h", "clock": 2,
         "timestamp": 2.0, "result": "1"}]


def fresh():
    state = State(max_tasks_in_memory=50)
    receiver = EventReceiver(Connection("memory://"), handlers={"*": state.event})
    return receiver, state


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(junk=st.lists(bodies, max_size=6))
def test_no_body_raises_out_of_the_receiver_and_good_events_around_it_apply(junk):
    receiver, state = fresh()
    receiver._receive_body(GOOD[0])
    for body in junk:
        receiver._receive_body(body)
    receiver._receive_body(GOOD[1])
    good = state.tasks["good"]
    assert good.name == "ok"
    # junk may carry task events for the same uuid, but never makes the good ones vanish
    assert good.succeeded == GOOD[1]["timestamp"] or good.state != "SUCCESS"


@settings(max_examples=300, deadline=None)
@given(raw=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)),
       content_type=st.sampled_from(["application/json", "application/x-python-serialize",
                                     "application/x-yaml", "application/x-msgpack", "text/plain",
                                     None, "weird/type"]))
def test_raw_message_bytes_are_decoded_or_counted_never_raised(raw, content_type):
    receiver, state = fresh()

    class Message:
        body = raw

    Message.content_type = content_type
    before = sum(receiver.dropped.values()) + receiver.event_count
    receiver._on_message(Message)
    assert sum(receiver.dropped.values()) + receiver.event_count >= before
    if content_type != "application/json":
        assert receiver.event_count == 0  # refused without decoding


def test_every_kind_of_drop_is_counted():
    receiver, state = fresh()
    for body in [5, "x", [1, 2], {}, {"type": 3}, {"type": "task-sent"},
                 {"type": "x", "clock": "1"}, {"type": "x", "timestamp": float("nan")}]:
        receiver._receive_body(body)
    assert dict(receiver.dropped) == {"not-an-object": 4, "missing-type": 1, "bad-field:type": 1,
                                      "bad-field:uuid": 1, "bad-field:clock": 1,
                                      "bad-field:timestamp": 1}


@settings(max_examples=300, deadline=None)
@given(event=event_like)
def test_the_state_alone_never_raises_on_any_event(event):
    state = State(max_tasks_in_memory=20)
    state.event(event)
    state.event(GOOD[0])
    assert state.tasks["good"].name == "ok"
    list(state.tasks_by_time())
    state.task_types()
    for task in list(state.tasks.values()):
        task.as_dict()
        task.info()


@settings(max_examples=300, deadline=None)
@given(event=event_like)
def test_dump_output_is_always_one_inert_line(event):
    human = format_human(event)
    assert "\n" not in human and UNSAFE_CHARACTERS.search(human) is None
    record = format_json(event)
    assert "\n" not in record and UNSAFE_CHARACTERS.search(record) is None
    json.loads(record)


def test_huge_numbers_and_nan_do_not_break_ordering():
    state = State()
    for clock, ts in [(10**30, 1.0), (1, 1e308), (2, -1e308), (3, 0.0)]:
        state.event({"type": "task-received", "uuid": f"u{clock}", "hostname": "w", "clock": clock,
                     "timestamp": ts, "local_received": ts})
    state.event({"type": "task-received", "uuid": "nan", "hostname": "w", "clock": 4,
                 "timestamp": math.nan, "local_received": math.inf})
    assert len(list(state.tasks_by_time())) == 5
