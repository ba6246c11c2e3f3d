"""TLS for real: rediss:// and amqps:// against servers with certificates made for this run."""

import json
import subprocess
import sys

import pytest
from kombu import Connection

from evtools.transport.broker import ssl_options_for
from evtools.dispatcher import EventDispatcher
from tests.integration.cli_process import EvtoolsProcess

pytestmark = pytest.mark.broker


def ssl_args(options):
    return [arg for key, value in options.items() for arg in ("--broker-ssl-option", f"{key}={value}")]


def publish(url, options, hostname):
    scheme = url.split("://")[0]
    with Connection(url, ssl=ssl_options_for(scheme, options)) as connection, \
            EventDispatcher(connection, hostname=hostname) as out:
        out.send("worker-heartbeat", freq=2.0)


def redis_options(tls_dir, verify=True, client_cert=True):
    options = {"ssl_cert_reqs": "required" if verify else "none"}
    if verify:
        options["ssl_ca_certs"] = str(tls_dir / "ca.pem")
    if client_cert:
        options.update(ssl_certfile=str(tls_dir / "client.pem"),
                       ssl_keyfile=str(tls_dir / "client.key"))
    return options


def amqp_options(tls_dir, verify=True, client_cert=False):
    options = {"cert_reqs": "required" if verify else "none"}
    if verify:
        options["ca_certs"] = str(tls_dir / "ca.pem")
    if client_cert:
        options.update(certfile=str(tls_dir / "client.pem"), keyfile=str(tls_dir / "client.key"))
    return options


CASES = [
    ("rediss_url", redis_options, {"verify": True, "client_cert": True}),
    ("rediss_url", redis_options, {"verify": False, "client_cert": True}),
    ("amqps_url", amqp_options, {"verify": True, "client_cert": False}),
    ("amqps_url", amqp_options, {"verify": True, "client_cert": True}),
    ("amqps_url", amqp_options, {"verify": False, "client_cert": False}),
]


@pytest.mark.parametrize("server, make_options, how", CASES,
                         ids=["redis-verified", "redis-unverified", "amqp-verified",
                              "amqp-verified-client-cert", "amqp-unverified"])
def test_the_dump_reads_events_over_tls(server, make_options, how, tls_dir, request):
    url = request.getfixturevalue(server)
    options = make_options(tls_dir, **how)
    dump = EvtoolsProcess("events", "--dump", "-b", url, *ssl_args(options), "-l", "info")
    dump.wait_ready()
    if server == "rediss_url":
        # the read-ahead Redis transport reads plain TCP only: kombu's own is used, and says so
        assert dump.wait_for("TLS: using kombu's"), dump.report()
    publish(url, options, "tls@publisher")
    assert dump.wait_for("tls@publisher", stream="stdout"), dump.report()
    assert dump.terminate() == 0
    assert not any("Traceback" in line for line in dump.stderr)
    if server == "amqps_url":
        # the read-ahead AMQP transport speaks TLS: no fall-back line
        assert not any("TLS: using" in line or "not used" in line for line in dump.stderr), \
            dump.report()


def test_tls_options_from_the_environment_work_too(rediss_url, tls_dir):
    options = redis_options(tls_dir)
    dump = EvtoolsProcess("events", "--dump", "-b", rediss_url, "-l", "info",
                          env={"EVTOOLS_BROKER_SSL_OPTIONS": json.dumps(options)})
    dump.wait_ready()
    publish(rediss_url, options, "env@publisher")
    assert dump.wait_for("env@publisher", stream="stdout"), dump.report()
    assert dump.terminate() == 0


@pytest.mark.parametrize("server, options, expected", [
    # TLS 1.3: the server's "certificate required" alert may come before or after our first
    # write; after it, the client only sees the connection end
    ("rediss_url", lambda d: redis_options(d, client_cert=False),
     ("certificate required", "eof occurred in violation of protocol")),
    ("rediss_url", lambda d: {"ssl_cert_reqs": "required", "ssl_certfile": str(d / "client.pem"),
                              "ssl_keyfile": str(d / "client.key")}, "certificate verify failed"),
    ("amqps_url", lambda d: {"cert_reqs": "required"}, "certificate verify failed"),
], ids=["redis-without-client-cert", "redis-unknown-ca", "amqp-unknown-ca"])
def test_a_tls_refusal_is_one_line(server, options, expected, tls_dir, request):
    url = request.getfixturevalue(server)
    done = subprocess.run([sys.executable, "-m", "evtools", "events", "--dump", "-b", url,
                           *ssl_args(options(tls_dir))], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines()
             if not line.startswith("-> ") and "kombu.connection" not in line]
    assert len(lines) == 1 and lines[0].startswith("evtools: cannot connect to "), done.stderr
    expected = (expected,) if isinstance(expected, str) else expected
    assert any(reason in lines[0].lower() for reason in expected), lines[0]


@pytest.mark.celery
def test_a_real_worker_over_verified_tls_with_a_client_certificate(rediss_url, tls_dir,
                                                                   celery_worker):
    options = redis_options(tls_dir)
    dump = EvtoolsProcess("events", "--dump", "-b", rediss_url, *ssl_args(options), "-l", "info")
    dump.wait_ready()
    worker = celery_worker(rediss_url, hostname="w1@tls", env={"INTEROP_USE_SSL": json.dumps(options)})
    assert dump.wait_for("w1@tls", stream="stdout", timeout=90), (dump.report(), worker.log_tail())
    assert worker.stop() == 0
    assert dump.wait_for("w1@tls [", stream="stdout") and dump.terminate() == 0
