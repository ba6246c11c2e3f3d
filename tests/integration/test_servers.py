"""The broker test harness itself: real brokers start, carry messages, die and come back."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import redis
from kombu import Connection

from tests.servers import RabbitServer, RedisServer, ServerError

pytestmark = pytest.mark.broker


def roundtrip(url: str) -> None:
    """Publish one message through a fresh kombu SimpleQueue, consume it, delete the queue."""
    body = {"hello": "broker", "id": uuid.uuid4().hex}
    with Connection(url, connect_timeout=10) as conn:
        conn.ensure_connection(max_retries=3)
        queue = conn.SimpleQueue(f"evtools-harness-{body['id']}")
        try:
            queue.put(body)
            message = queue.get(timeout=10)
            message.ack()
            assert message.payload == body
        finally:
            queue.close()  # cancel the consumer before deleting its queue
            queue.queue.delete()


def redis_alive(url: str) -> bool:
    """Tell whether a Redis answers PING at url."""
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
    finally:
        client.close()


def test_publish_and_consume(broker_url: str) -> None:
    """kombu can send a message to itself through each session broker."""
    roundtrip(broker_url)


def test_broker_urls_are_loopback_on_private_ports(redis_url: str, amqp_url: str) -> None:
    """The session brokers never use the default ports, so a system broker is left alone."""
    assert redis_url.startswith("redis://127.0.0.1:") and ":6379/" not in redis_url
    assert amqp_url.startswith("amqp://guest:guest@127.0.0.1:") and ":5672/" not in amqp_url


def test_own_redis_can_be_killed_and_restarted(own_redis: RedisServer) -> None:
    """A dedicated Redis dies with SIGKILL, comes back on the same port, and starts empty."""
    client = redis.Redis.from_url(own_redis.url, socket_connect_timeout=2, socket_timeout=2)
    client.set("evtools:before-crash", "1")
    own_redis.kill()
    assert not own_redis.is_running()
    assert not redis_alive(own_redis.url)

    own_redis.start()
    assert own_redis.is_running()
    assert redis_alive(own_redis.url)
    assert client.get("evtools:before-crash") is None  # no persistence: a crash loses everything
    client.close()
    roundtrip(own_redis.url)

    own_redis.restart()
    assert own_redis.is_running()
    roundtrip(own_redis.url)


def test_redis_start_failure_reports_the_log(own_redis: RedisServer, tmp_path: Path) -> None:
    """Starting a second Redis on a busy port raises, quoting the server log."""
    clash = RedisServer(own_redis.port, tmp_path)
    with pytest.raises(ServerError, match=r"(?s)exited with status.*Address already in use"):
        clash.start()
    assert not clash.is_running()
    assert own_redis.is_running()  # the failed start did not hurt the server that owns the port


def test_own_rabbit_crash_leaves_other_nodes_alone(own_rabbit: RabbitServer, amqp_url: str) -> None:
    """Killing, restarting and stopping a second RabbitMQ node leaves the session node working."""
    roundtrip(own_rabbit.url)
    own_rabbit.kill()
    assert not own_rabbit.is_running()
    roundtrip(amqp_url)

    own_rabbit.start()
    roundtrip(own_rabbit.url)
    own_rabbit.stop()
    assert not own_rabbit.is_running()
    roundtrip(amqp_url)  # epmd and the session node survived the other node's stop
