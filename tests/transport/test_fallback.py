"""Without the read-ahead transports (probe failed, or EVTOOLS_FAST_TRANSPORTS=0) nothing changes
but speed: the same events, the same dump, and one line saying which transport is used."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from kombu import Connection

import evtools
from evtools.dispatcher import EventDispatcher
from evtools.transport import probe
from evtools.transport.broker import ssl_options_for
from tests.helpers import wait_for
from tests.integration.cli_process import EvtoolsProcess

FALLBACK = "using kombu's own"

#: TLS options of the command line's broker, from the environment.
SSL_OPTIONS_VAR = "EVTOOLS_BROKER_SSL_OPTIONS"

#: The one field of a dump line that differs between two receivers of the same event.
LOCAL_RECEIVED = re.compile(r"local_received=[0-9.]+, ")

#: Makes the probe of every read-ahead transport fail, as a missing private name would.
FAILING_PROBE = """\
from evtools.transport import probe
for kind in probe.NEEDS:
    probe.NEEDS[kind] += (probe.Need("evtools_tests_no_such_module"),)
"""

MODES = {
    "fast": {},
    "probe-failed": {"PYTHONPATH": "{sitecustomize}"},
    "switched-off": {"EVTOOLS_FAST_TRANSPORTS": "0"},
}


def _broker(kind: str, request: pytest.FixtureRequest, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    if kind == "filesystem":
        monkeypatch.setenv("EVTOOLS_FS_BROKER", str(tmp_path / "broker"))
        return "filesystem://", "filesystem"
    if kind == "rabbitmq-tls":
        tls_dir = request.getfixturevalue("tls_dir")
        monkeypatch.setenv(SSL_OPTIONS_VAR, json.dumps({"cert_reqs": "required",
                                                        "ca_certs": str(tls_dir / "ca.pem")}))
        return request.getfixturevalue("amqps_url"), "amqp"
    url = request.getfixturevalue("redis_url" if kind == "redis" else "amqp_url")
    return url, kind.replace("rabbitmq", "amqp")


@pytest.fixture(params=["redis", "rabbitmq", "filesystem"])
def any_broker(request: pytest.FixtureRequest, tmp_path: Path,
               monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """(URL, read-ahead transport kind) of a real Redis, RabbitMQ or embedded broker."""
    return _broker(request.param, request, tmp_path, monkeypatch)


@pytest.fixture(params=["redis", "rabbitmq", "rabbitmq-tls", "filesystem"])
def any_broker_or_tls(request: pytest.FixtureRequest, tmp_path: Path,
                      monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """As :func:`any_broker`, and RabbitMQ over verified TLS (options in the environment)."""
    return _broker(request.param, request, tmp_path, monkeypatch)


def publisher(url: str) -> Connection:
    """The same publisher whatever the receiver's mode.

    On filesystem:// it is evtools' writer: kombu's own names files by the millisecond and a
    random uuid, so two messages written within a millisecond may be read in either order.
    """
    if url.startswith("filesystem://"):
        from evtools.transport.filesystem import Transport
        return evtools.connect(url, transport=Transport)
    if url.startswith("amqps://"):
        return Connection(url, ssl=ssl_options_for("amqps", json.loads(os.environ[SSL_OPTIONS_VAR])))
    return Connection(url)


def publish_everything(url: str) -> None:
    """Events in every shape the read-ahead paths treat apart: plain, grouped, big, multi-line."""
    with publisher(url) as connection:
        with EventDispatcher(connection, hostname="w1@fallback") as dispatcher:
            dispatcher.send("worker-online", freq=2.0)
            dispatcher.send("task-received", uuid="t1", name="proj.add", args="(1, 2)", kwargs="{}")
            dispatcher.send("task-failed", uuid="t1", exception="ValueError('x')",
                            traceback="Traceback:\n  line 1\nValueError: x")
            dispatcher.send("task-received", uuid="big", name="proj.big", args="x" * 200_000,
                            kwargs="{}")
        with EventDispatcher(connection, hostname="w2@fallback", buffer_group={"task"},
                             buffer_limit=3) as grouped:  # three events in one message
            for uuid in ("g1", "g2", "g3"):
                grouped.send("task-started", uuid=uuid)
        with EventDispatcher(connection, hostname="w1@fallback") as dispatcher:
            dispatcher.send("worker-offline", sentinel=True)


def short(dump: EvtoolsProcess) -> str:
    """What a dump printed, each line cut short (one event carries 200 kB)."""
    return "\n".join(line[:300] for line in dump.stdout + ["--- stderr ---"] + dump.stderr)


def test_every_transport_gives_the_same_dump_without_its_read_ahead_path(any_broker_or_tls, tmp_path):
    url, kind = any_broker_or_tls
    (tmp_path / "sitecustomize.py").write_text(FAILING_PROBE)
    dumps = {}
    for mode, env in MODES.items():
        env = {key: value.format(sitecustomize=tmp_path) for key, value in env.items()}
        dumps[mode] = EvtoolsProcess("events", "--dump", "-b", url, "-l", "info", env=env)
    for dump in dumps.values():
        dump.wait_ready()
    publish_everything(url)
    for dump in dumps.values():
        assert dump.wait_for("shutdown: ", stream="stdout", timeout=30), short(dump)
    assert [dump.terminate() for dump in dumps.values()] == [0, 0, 0]

    lines = {mode: [LOCAL_RECEIVED.sub("", line) for line in dump.stdout]
             for mode, dump in dumps.items()}
    assert len(lines["fast"]) == 8 and "args=" + "x" * 200_000 in lines["fast"][3], short(dumps["fast"])
    assert lines["probe-failed"] == lines["fast"]
    assert lines["switched-off"] == lines["fast"]
    said = {mode: [line for line in dump.stderr if FALLBACK in line]
            for mode, dump in dumps.items()}
    assert len(said["fast"]) == (0 if probe.problem(kind) is None else 1), said
    # the first problem found is the one said: on an old stack, the version
    reason = probe.problem(kind) or "evtools_tests_no_such_module is missing"
    assert len(said["probe-failed"]) == 1 and reason in said["probe-failed"][0], said
    assert len(said["switched-off"]) == 1 and "EVTOOLS_FAST_TRANSPORTS=0" in said["switched-off"][0]
    for dump in dumps.values():
        assert not any("Traceback" in line for line in dump.stderr), short(dump)


def pattern_subscriptions(url: str) -> int:
    """How many pattern subscriptions Redis' clients hold (0 for other brokers)."""
    if not url.startswith("redis://"):
        return 0
    import redis
    return sum(int(client.get("psub", 0)) for client in redis.Redis.from_url(url).client_list())


def publish_when_subscribed(url: str, before: int) -> None:
    """Publish once Redis has processed the receiver's PSUBSCRIBE (sent, not yet confirmed)."""
    if url.startswith("redis://"):
        assert wait_for(lambda: pattern_subscriptions(url) > before, timeout=10)
    publish_everything(url)


def library_events(url: str, env: dict[str, str]) -> tuple[list[str], str]:
    """Events a receiver made from a URL sees in a fresh interpreter, and its log output."""
    script = (
        "import logging, sys, evtools\n"
        "from tests.transport.test_fallback import pattern_subscriptions, publish_when_subscribed\n"
        "logging.basicConfig(level=logging.INFO, stream=sys.stderr)\n"
        "seen = []\n"
        "subscribed = pattern_subscriptions(sys.argv[1])\n"
        "receiver = evtools.EventReceiver(sys.argv[1], handlers={'*': seen.append})\n"
        "receiver.on_ready = lambda: publish_when_subscribed(sys.argv[1], subscribed)\n"
        "receiver.capture(limit=6, timeout=20, wakeup=False)\n"
        "print(type(receiver.connection.transport).__module__)\n"
        "for event in seen: print(event['type'], event.get('uuid'), len(event.get('args', '')))\n")
    root = str(Path(__file__).resolve().parents[2])
    paths = [path for path in (env.get("PYTHONPATH"), root) if path]
    result = subprocess.run([sys.executable, "-c", script, url], capture_output=True, text=True,
                            timeout=60,
                            env={**os.environ, **env, "PYTHONPATH": os.pathsep.join(paths)})
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines(), result.stderr


def test_the_library_gets_the_same_events_on_kombus_transports(any_broker, tmp_path):
    url, kind = any_broker
    (tmp_path / "sitecustomize.py").write_text(FAILING_PROBE)
    fast, _ = library_events(url, {})
    failed, failed_log = library_events(url, {"PYTHONPATH": str(tmp_path)})
    off, off_log = library_events(url, {"EVTOOLS_FAST_TRANSPORTS": "0"})
    assert fast[1:] == failed[1:] == off[1:]
    assert len(fast) == 1 + 8 and fast[-1] == "worker-offline None 0"  # six messages, eight events
    expected_module = "kombu.transport" if probe.problem(kind) else "evtools.transport"
    assert fast[0].startswith(expected_module)
    assert failed[0].startswith("kombu.transport") and off[0].startswith("kombu.transport")
    assert failed_log.count(FALLBACK) == 1 and off_log.count(FALLBACK) == 1


def test_a_redis_url_without_the_redis_client_is_one_line_and_a_failure(tmp_path):
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['redis'] = None\n")
    result = subprocess.run([sys.executable, "-m", "evtools", "events", "--dump", "-b",
                             "redis://127.0.0.1:1/0"], capture_output=True, text=True, timeout=60,
                            env=dict(os.environ, PYTHONPATH=str(tmp_path)))
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "-> evdump: starting capture...",
        "evtools: the redis transport needs the redis client: pip install 'evtools[redis]'"]
