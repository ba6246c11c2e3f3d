"""Events are dicts; the exchange is topic, fanout on Redis."""

import time

from kombu import Connection

from evtools.event import Event, event_exchange, get_exchange, group_from, routing_key_for


def test_event_sets_type_and_a_current_timestamp():
    before = time.time()
    event = Event("worker-online", hostname="w1")
    assert event["type"] == "worker-online"
    assert before <= event["timestamp"] <= time.time()
    assert event["hostname"] == "w1"


def test_event_keeps_a_given_timestamp_and_copies_fields():
    fields = {"uuid": "x", "timestamp": 12.5}
    event = Event("task-sent", fields, name="add")
    assert event == {"uuid": "x", "timestamp": 12.5, "name": "add", "type": "task-sent"}
    assert "type" not in fields


def test_group_and_routing_key():
    assert group_from("task-sent") == "task"
    assert group_from("custom-my-event") == "custom"
    assert group_from("plain") == "plain"
    assert routing_key_for("task-succeeded") == "task.succeeded"


def test_exchange_is_topic_but_fanout_on_redis():
    assert event_exchange.name == "celeryev" and event_exchange.type == "topic"
    assert get_exchange(Connection("amqp://localhost:1//")).type == "topic"
    assert get_exchange(Connection("memory://")).type == "topic"
    redis_exchange = get_exchange(Connection("redis://localhost:1/0"), name="myev")
    assert (redis_exchange.name, redis_exchange.type) == ("myev", "fanout")


def test_exchange_matches_celery_for_each_transport():
    from celery.events.event import get_exchange as celery_get_exchange
    for url in ("amqp://localhost:1//", "redis://localhost:1/0", "memory://"):
        ours, theirs = get_exchange(Connection(url)), celery_get_exchange(Connection(url))
        assert (ours.name, ours.type, ours.durable, ours.auto_delete) == \
            (theirs.name, theirs.type, theirs.durable, theirs.auto_delete)
