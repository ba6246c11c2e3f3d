"""Shared pytest fixtures: real Redis and RabbitMQ brokers (see tests/servers.py).

``make test`` runs pytest under ``python -m tests.servers run``, which starts the brokers once and
passes their URLs in EVTOOLS_TEST_REDIS_URL / EVTOOLS_TEST_AMQP_URL.  Without those variables
(a plain ``pytest``) the session fixtures start their own brokers.  A broker that can't be started
fails the tests that need it; nothing is ever skipped for want of a broker.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from os import environ
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.servers import (LIMITED_USER, NOREAD_USER, BrokerServer, PrometheusServer, RabbitServer,
                           RedisServer, SentinelSet, ServerError, TlsRedisServer, epmd_running,
                           free_port, make_certificates, port_open, stop_idle_epmd)

REDIS_URL_VAR = "EVTOOLS_TEST_REDIS_URL"
AMQP_URL_VAR = "EVTOOLS_TEST_AMQP_URL"
DEFAULT_PORTS = {"redis": 6379, "amqp": 5672}
AMQPS_URL_VAR = "EVTOOLS_TEST_AMQPS_URL"
REDISS_URL_VAR = "EVTOOLS_TEST_REDISS_URL"
TLS_DIR_VAR = "EVTOOLS_TEST_TLS_DIR"
SENTINEL_URL_VAR = "EVTOOLS_TEST_SENTINEL_URL"
SENTINEL_MASTER_VAR = "EVTOOLS_TEST_SENTINEL_MASTER"
LIMITED_URL_VAR = "EVTOOLS_TEST_AMQP_LIMITED_URL"
NOREAD_URL_VAR = "EVTOOLS_TEST_AMQP_NOREAD_URL"


def _sigterm_to_interrupt(signum: int, frame: Any) -> None:
    """Handle SIGTERM like Ctrl-C, so pytest still runs fixture teardown (stopping brokers)."""
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    """Install the SIGTERM handler unless someone else handles SIGTERM already."""
    if (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL):
        signal.signal(signal.SIGTERM, _sigterm_to_interrupt)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Put the default SIGTERM handling back."""
    if (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) is _sigterm_to_interrupt):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _url_from_env(var: str) -> str | None:
    """The broker URL given in the environment, after checking that something listens there."""
    url = environ.get(var)
    if not url:
        return None
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or DEFAULT_PORTS.get(parts.scheme, 0)
    if not port_open(port, host, timeout=5):
        pytest.fail(f"{var}={url}, but nothing accepts connections on {host}:{port}", pytrace=False)
    return url


@contextmanager
def _dedicated(cls: type[BrokerServer], purpose: str, **options: Any) -> Iterator[BrokerServer]:
    """Start a fresh server in its own temp dir, fail loudly if that is impossible, clean up after."""
    workdir = Path(tempfile.mkdtemp(prefix=f"evtools-{cls.name}-"))
    had_epmd = cls is not RabbitServer or epmd_running()
    server = cls(free_port(), workdir, **options)
    try:
        try:
            server.start()
        except (ServerError, OSError) as exc:
            pytest.fail(f"could not start {cls.name} for {purpose}: {exc}", pytrace=False)
        yield server
    finally:
        server.stop()
        if not had_epmd:
            stop_idle_epmd()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of the session's Redis (from EVTOOLS_TEST_REDIS_URL, else started here)."""
    url = _url_from_env(REDIS_URL_VAR)
    if url:
        yield url
        return
    with _dedicated(RedisServer, "the test session") as server:
        yield server.url


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """URL of the session's RabbitMQ (from EVTOOLS_TEST_AMQP_URL, else started here)."""
    url = _url_from_env(AMQP_URL_VAR)
    if url:
        yield url
        return
    with _dedicated(RabbitServer, "the test session") as server:
        yield server.url


class Prometheus:
    """A running Prometheus: its API URL and the folders its scrape targets and rules are read from."""

    def __init__(self, url: str, targets_dir: Path, rules_dir: Path) -> None:
        self.url = url
        self.targets_dir = Path(targets_dir)
        self.rules_dir = Path(rules_dir)

    def reload(self) -> None:
        """Make Prometheus read its configuration and rule files again."""
        request = urllib.request.Request(f"{self.url}/-/reload", method="POST")
        with urllib.request.urlopen(request, timeout=30) as reply:
            assert reply.status == 200, reply.read()


@pytest.fixture(scope="session")
def prometheus() -> Iterator[Prometheus]:
    """The session's Prometheus (from EVTOOLS_TEST_PROMETHEUS_URL/_TARGETS/_RULES, else started here)."""
    url, targets = environ.get("EVTOOLS_TEST_PROMETHEUS_URL"), environ.get("EVTOOLS_TEST_PROMETHEUS_TARGETS")
    rules = environ.get("EVTOOLS_TEST_PROMETHEUS_RULES")
    if url and targets and rules:
        port = urlsplit(url).port or 9090
        if not port_open(port, timeout=5):
            pytest.fail(f"EVTOOLS_TEST_PROMETHEUS_URL={url}, but nothing listens there", pytrace=False)
        yield Prometheus(url, Path(targets), Path(rules))
        return
    with _dedicated(PrometheusServer, "the test session") as server:
        assert isinstance(server, PrometheusServer)
        yield Prometheus(server.url, server.targets_dir, server.rules_dir)


@pytest.fixture(scope="session")
def tls_dir() -> Iterator[Path]:
    """Folder with ca.pem, server.pem/key and client.pem/key made for this run."""
    if environ.get(TLS_DIR_VAR):
        yield Path(environ[TLS_DIR_VAR])
        return
    folder = Path(tempfile.mkdtemp(prefix="evtools-certs-"))
    try:
        yield make_certificates(folder)
    except ServerError as exc:
        pytest.fail(f"could not make test certificates: {exc}", pytrace=False)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def _tls_rabbit(tls_dir: Path) -> Iterator[RabbitServer | None]:
    """A RabbitMQ with a TLS listener and the least-privileged users, unless the harness runs one."""
    if environ.get(AMQPS_URL_VAR) and environ.get(LIMITED_URL_VAR):
        yield None
        return
    with _dedicated(RabbitServer, "TLS and permission tests", certs=tls_dir) as server:
        assert isinstance(server, RabbitServer)
        server.urls = {LIMITED_URL_VAR: server.add_user(*LIMITED_USER),  # type: ignore[attr-defined]
                       NOREAD_URL_VAR: server.add_user(*NOREAD_USER)}
        yield server


@pytest.fixture(scope="session")
def amqps_url(_tls_rabbit: RabbitServer | None) -> str:
    """amqps:// URL of a RabbitMQ whose TLS listener verifies client certificates when given."""
    return _url_from_env(AMQPS_URL_VAR) or _tls_rabbit.tls_url  # type: ignore[union-attr]


@pytest.fixture(scope="session")
def limited_amqp_url(_tls_rabbit: RabbitServer | None) -> str:
    """amqp:// URL of a user allowed only what evtools needs (see tests/servers.py LIMITED_USER)."""
    return _url_from_env(LIMITED_URL_VAR) or _tls_rabbit.urls[LIMITED_URL_VAR]  # type: ignore


@pytest.fixture(scope="session")
def noread_amqp_url(_tls_rabbit: RabbitServer | None) -> str:
    """amqp:// URL of that user without read on the celeryev exchange."""
    return _url_from_env(NOREAD_URL_VAR) or _tls_rabbit.urls[NOREAD_URL_VAR]  # type: ignore


@pytest.fixture(scope="session")
def rediss_url(tls_dir: Path) -> Iterator[str]:
    """rediss:// URL of a TLS-only Redis that requires a client certificate."""
    url = _url_from_env(REDISS_URL_VAR)
    if url:
        yield url
        return
    with _dedicated(TlsRedisServer, "TLS tests", certs=tls_dir) as server:
        yield server.url


@contextmanager
def _sentinel_set(purpose: str) -> Iterator[SentinelSet]:
    workdir = Path(tempfile.mkdtemp(prefix="evtools-sentinel-"))
    servers = SentinelSet(workdir)
    try:
        try:
            servers.start()
        except (ServerError, OSError) as exc:
            pytest.fail(f"could not start a Sentinel set for {purpose}: {exc}", pytrace=False)
        yield servers
    finally:
        servers.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def sentinel() -> Iterator[tuple[str, str]]:
    """(sentinel:// URL, master name) of the session's Sentinel set (never failed over)."""
    url = _url_from_env(SENTINEL_URL_VAR)
    if url:
        yield url, environ.get(SENTINEL_MASTER_VAR, "evtools-master")
        return
    with _sentinel_set("the test session") as servers:
        yield servers.url, servers.master_name


@pytest.fixture
def own_sentinel() -> Iterator[SentinelSet]:
    """A dedicated master + replica + Sentinel for this test alone (free to fail over)."""
    with _sentinel_set("own_sentinel") as servers:
        yield servers


@pytest.fixture(params=["redis", "rabbitmq"], ids=["redis", "rabbitmq"])
def broker_url(request: pytest.FixtureRequest) -> str:
    """The session broker URL, once for Redis and once for RabbitMQ."""
    return request.getfixturevalue("redis_url" if request.param == "redis" else "amqp_url")


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A dedicated, running Redis for this test alone (free to kill/restart); stopped afterwards."""
    with _dedicated(RedisServer, "own_redis") as server:
        assert isinstance(server, RedisServer)
        yield server


@pytest.fixture
def own_rabbit() -> Iterator[RabbitServer]:
    """A dedicated, running RabbitMQ for this test alone (free to kill/restart); stopped afterwards."""
    with _dedicated(RabbitServer, "own_rabbit") as server:
        assert isinstance(server, RabbitServer)
        yield server


@pytest.fixture(autouse=True)
def no_process_left_behind() -> Iterator[None]:
    """Kill whatever ``evtools`` process a test started and did not stop (a failed test)."""
    from tests.integration.cli_process import STARTED
    yield
    while STARTED:
        STARTED.pop().kill()
