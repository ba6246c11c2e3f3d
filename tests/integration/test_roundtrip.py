"""EventDispatcher -> real broker -> EventReceiver -> State, on Redis and on RabbitMQ."""

import pickle

from kombu import Connection, Producer, Queue

from evtools.dispatcher import EventDispatcher
from evtools.receiver import EventReceiver
from evtools.state import State
from tests.helpers import Capture, CeleryCapture, wait_for


def lifecycle(dispatcher, uuid, name="proj.add"):
    dispatcher.send("task-received", uuid=uuid, name=name, args="(1, 2)", kwargs="{}",
                    root_id=uuid, parent_id=None, retries=0, eta=None, expires=None)
    dispatcher.send("task-started", uuid=uuid)
    dispatcher.send("task-succeeded", uuid=uuid, result="3", runtime=0.01)


def test_single_events_and_multi_lists_arrive_in_the_state(broker_url):
    state = State()
    with Connection(broker_url) as connection:
        receiver = EventReceiver(connection, handlers={"*": state.event})
        capture = Capture(receiver, wakeup=False).start()
        with Connection(broker_url) as out, \
                EventDispatcher(out, hostname="w1@roundtrip") as single, \
                EventDispatcher(out, hostname="w2@roundtrip", buffer_group={"task"},
                                buffer_limit=4) as batched:
            single.send("worker-online", freq=2.0, sw_ident="evtools-test")
            for n in range(10):
                lifecycle(single, f"single-{n}")
            for n in range(10):
                lifecycle(batched, f"multi-{n}")
            batched.flush()
            assert wait_for(lambda: len(state.tasks) == 20 and all(
                t.state == "SUCCESS" for t in state.tasks.values()), timeout=20)
        capture.stop()
    assert not capture.errors
    assert receiver.event_count == 61 and not receiver.dropped
    assert state.workers["w1@roundtrip"].sw_ident == "evtools-test"
    assert {t.worker.hostname for t in state.tasks_by_type["proj.add"]} == \
        {"w1@roundtrip", "w2@roundtrip"}
    assert state.task_count == 20


def test_malformed_messages_on_a_real_broker_are_counted_and_capture_goes_on(broker_url):
    state = State()
    with Connection(broker_url) as connection:
        receiver = EventReceiver(connection, handlers={"*": state.event})
        capture = Capture(receiver, wakeup=False).start()
        with Connection(broker_url) as out:
            producer = Producer(out.default_channel, exchange=receiver.exchange)
            publish = producer.publish
            publish(b"definitely not json", routing_key="task.sent",
                    content_type="application/json", content_encoding="utf-8")
            publish(pickle.dumps({"type": "task-sent", "uuid": "p"}), routing_key="task.sent",
                    content_type="application/x-python-serialize", content_encoding="binary")
            publish([1, "two", {"no": "type"}], routing_key="task.multi", serializer="json")
            publish({"type": "task-sent", "uuid": 17}, routing_key="task.sent", serializer="json")
            with EventDispatcher(out, hostname="w@junk") as dispatcher:
                lifecycle(dispatcher, "good")
            assert wait_for(lambda: state.tasks.get("good") is not None and
                            state.tasks["good"].state == "SUCCESS", timeout=20)
        capture.stop()
    assert receiver.dropped == {"not-json": 1, "content-type:application/x-python-serialize": 1,
                                "not-an-object": 2, "missing-type": 1, "bad-field:uuid": 1}
    assert "p" not in state.tasks


def test_rabbitmq_queue_has_celerys_arguments(amqp_url):
    with Connection(amqp_url) as connection:
        receiver = EventReceiver(connection, node_id="argcheck")
        capture = Capture(receiver, wakeup=False).start()
        # Redeclaring succeeds only when every argument matches what the receiver declared.
        same = Queue("celeryev.argcheck", exchange=receiver.exchange, routing_key="#",
                     auto_delete=True, exclusive=True, durable=False, message_ttl=5.0,
                     expires=60.0)
        capture.stop()
        same(connection.default_channel).declare()
        assert receiver.exchange.type == "topic"


def test_celerys_receiver_and_state_accept_what_evtools_sends(broker_url):
    celery = CeleryCapture(broker_url).start()
    with Connection(broker_url) as out, \
            EventDispatcher(out, hostname="w9@evtools", buffer_group={"task"},
                            buffer_limit=2) as dispatcher:
        dispatcher.send("worker-online", freq=2.0, active=0, processed=0, loadavg=[0, 0, 0],
                        sw_ident="evtools", sw_ver="0.1", sw_sys="Linux")
        dispatcher.send("task-sent", uuid="c1", name="proj.mul", args="()", kwargs="{}")
        lifecycle(dispatcher, "c1", name="proj.mul")
        dispatcher.send("task-failed", uuid="c2", exception="ValueError('x')", traceback="tb")
        dispatcher.flush()
        assert wait_for(lambda: "c2" in celery.state.tasks and
                        celery.state.tasks.get("c1") is not None and
                        celery.state.tasks["c1"].state == "SUCCESS", timeout=20)
    celery.stop()
    assert not celery.errors
    state = celery.state
    assert state.tasks["c1"].name == "proj.mul" and state.tasks["c2"].state == "FAILURE"
    assert state.workers["w9@evtools"].sw_ident == "evtools" and state.workers["w9@evtools"].alive


def test_offline_buffer_is_flushed_once_the_broker_is_back(own_redis):
    url = own_redis.url
    state = State()
    with Connection(url) as out:
        dispatcher = EventDispatcher(out, hostname="w@offline")
        dispatcher.send("worker-online")
        own_redis.kill()
        dispatcher.send("task-received", uuid="kept", name="n")
        assert len(dispatcher._outbound_buffer) == 1
        own_redis.start()
        with Connection(url) as connection:
            receiver = EventReceiver(connection, handlers={"*": state.event})
            capture = Capture(receiver, wakeup=False).start()
            # As a Celery worker does after a reconnect: re-enable (new producer), then flush.
            out.close()
            out.ensure_connection(max_retries=5)
            dispatcher.enable()
            dispatcher.flush()
            assert not dispatcher._outbound_buffer
            assert wait_for(lambda: "kept" in state.tasks, timeout=20)
            capture.stop()
    assert state.tasks["kept"].name == "n"


def test_a_celery_apps_event_settings_reach_both_ends_on_a_real_broker(broker_url):
    from celery import Celery
    app = Celery(broker=broker_url, set_as_current=False)
    app.conf.update(event_exchange="appev-roundtrip", event_queue_ttl=None,
                    event_queue_expires=None)
    state = State()
    with Connection(broker_url) as connection:
        receiver = EventReceiver(connection, handlers={"*": state.event}, app=app)
        assert (receiver.queue.message_ttl, receiver.queue.expires) == (None, None)
        capture = Capture(receiver, wakeup=False).start()
        with Connection(broker_url) as out, \
                EventDispatcher(out, hostname="w1@app", app=app) as dispatcher, \
                EventDispatcher(out, hostname="w2@default") as elsewhere:
            lifecycle(elsewhere, "on-the-default-exchange")
            lifecycle(dispatcher, "on-the-app-exchange")
            assert wait_for(lambda: "on-the-app-exchange" in state.tasks and
                            state.tasks["on-the-app-exchange"].state == "SUCCESS", timeout=20)
        capture.stop()
    assert not capture.errors
    assert list(state.tasks) == ["on-the-app-exchange"]
