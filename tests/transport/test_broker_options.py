"""Broker transport and TLS options: from flags, the environment and a Celery app, on every command."""

import ssl
import textwrap

import pytest
from click.testing import CliRunner

from evtools.transport.broker import connection_for, ssl_options_for
from evtools.cli import main
from evtools.config import parse_key_values, resolve_settings
from evtools.errors import ConfigurationError


def run(*args, env=None):
    return CliRunner().invoke(main, list(args), env=env)


def one_error_line(result):
    lines = [line for line in result.output.splitlines() if not line.startswith("-> ")]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


def test_values_are_json_when_they_parse_and_strings_otherwise():
    assert parse_key_values(["master_name=mymaster", "visibility_timeout=3600",
                             'sentinel_kwargs={"password": "x"}', "fanout_patterns=true",
                             "empty=", "url=a=b"], "--x") == {
        "master_name": "mymaster", "visibility_timeout": 3600,
        "sentinel_kwargs": {"password": "x"}, "fanout_patterns": True, "empty": "",
        "url": "a=b"}


def test_the_command_line_wins_over_the_environment_key_by_key():
    env = {"EVTOOLS_BROKER_TRANSPORT_OPTIONS": '{"master_name": "env", "socket_timeout": 3}',
           "EVTOOLS_BROKER_SSL_OPTIONS": "ssl_cert_reqs=none; ssl_ca_certs=/env/ca.pem"}
    settings = resolve_settings("redis://h", environ=env, transport_options={"master_name": "cli"},
                                ssl_options={"ssl_ca_certs": "/cli/ca.pem"})
    assert settings.broker_transport_options == {"master_name": "cli", "socket_timeout": 3}
    assert settings.broker_use_ssl == {"ssl_cert_reqs": "none", "ssl_ca_certs": "/cli/ca.pem"}


@pytest.fixture
def app_module(tmp_path, monkeypatch):
    (tmp_path / "proj_brokeropts.py").write_text(textwrap.dedent("""
        from celery import Celery
        app = Celery("proj", broker="sentinel://127.0.0.1:1", set_as_current=False)
        app.conf.broker_transport_options = {"master_name": "from-app", "socket_timeout": 2}
        app.conf.broker_use_ssl = {"ssl_cert_reqs": "required", "ssl_ca_certs": "/app/ca.pem"}
    """))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "proj_brokeropts"


@pytest.mark.celery
def test_an_apps_transport_and_tls_options_are_honoured_and_can_be_overridden(app_module):
    settings = resolve_settings(app=app_module, environ={})
    assert settings.broker_transport_options == {"master_name": "from-app", "socket_timeout": 2}
    assert settings.broker_use_ssl == {"ssl_cert_reqs": "required", "ssl_ca_certs": "/app/ca.pem"}
    connection = connection_for(settings)
    assert connection.transport_options["master_name"] == "from-app"
    assert connection.ssl == {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": "/app/ca.pem"}
    overridden = resolve_settings(app=app_module, environ={},
                                  transport_options={"master_name": "cli"})
    assert overridden.broker_transport_options == {"master_name": "cli", "socket_timeout": 2}


def test_tls_options_take_either_spelling_for_either_broker():
    given = {"ssl_cert_reqs": "required", "ca_certs": "ca.pem", "ssl_certfile": "c.pem",
             "keyfile": "c.key"}
    assert ssl_options_for("rediss", given) == {
        "ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": "ca.pem", "ssl_certfile": "c.pem",
        "ssl_keyfile": "c.key"}
    assert ssl_options_for("amqps", given) == {
        "cert_reqs": ssl.CERT_REQUIRED, "ca_certs": "ca.pem", "certfile": "c.pem",
        "keyfile": "c.key"}
    assert ssl_options_for("amqp", True) is True
    with pytest.raises(ConfigurationError, match="cert_reqs='maybe'"):
        ssl_options_for("amqps", {"cert_reqs": "maybe"})


@pytest.mark.parametrize("command", [["events", "--dump"], ["events"], ["control", "ping"],
                                     ["demo", "--duration", "1"]])
@pytest.mark.parametrize("option, value, message", [
    ("--broker-transport-option", "novalue", "--broker-transport-option: expected KEY=VALUE"),
    ("--broker-ssl-option", "=x", "--broker-ssl-option: expected KEY=VALUE"),
])
def test_every_command_that_connects_takes_the_options(command, option, value, message):
    result = run(*command, "-b", "redis://127.0.0.1:1/0", option, value)
    assert result.exit_code == 2
    assert one_error_line(result) == f"evtools: {message} (e.g. master_name=mymaster), got {value!r}"


def test_options_before_the_subcommand_count_too():
    result = run("--broker-transport-option", "bad", "events", "--dump", "-b", "redis://h:1/0")
    assert result.exit_code == 2 and "got 'bad'" in one_error_line(result)


@pytest.mark.parametrize("env, message", [
    ({"EVTOOLS_BROKER_TRANSPORT_OPTIONS": "{not json"},
     "$EVTOOLS_BROKER_TRANSPORT_OPTIONS is not a valid JSON object"),
    ({"EVTOOLS_BROKER_TRANSPORT_OPTIONS": "[1, 2]"},
     "$EVTOOLS_BROKER_TRANSPORT_OPTIONS: expected KEY=VALUE"),
    ({"EVTOOLS_BROKER_SSL_OPTIONS": "cert_reqs=sometimes"},
     "TLS option cert_reqs='sometimes': expected none, optional or required"),
])
def test_bad_values_in_the_environment_are_one_line_and_status_2(env, message):
    result = run("events", "--dump", "-b", "amqps://127.0.0.1:1//", env=env)
    assert result.exit_code == 2
    assert message in one_error_line(result)


def test_sentinel_without_a_master_name_says_how_to_give_it():
    result = run("events", "--dump", "-b", "sentinel://127.0.0.1:1;sentinel://127.0.0.1:2")
    assert result.exit_code == 2
    assert "Sentinel needs the master's name: --broker-transport-option master_name=NAME" in \
        one_error_line(result)


@pytest.mark.parametrize("url, reason", [
    ("sqs://", "Amazon SQS has no fanout or topic exchange"),
    ("SQS://key:secret@", "Amazon SQS has no fanout or topic exchange"),
    ("rediscluster://127.0.0.1:7000", "Redis Cluster shards keys by slot"),
])
@pytest.mark.parametrize("command", [["events", "--dump"], ["events"],
                                     ["events", "--camera", "evtools.cameras.JSONLinesCamera"]])
def test_transports_that_cannot_carry_events_exit_with_status_2(command, url, reason, tmp_path):
    if "--camera" in command:
        command = [*command, "--camera-opt", f"path={tmp_path / 'shots.jsonl'}"]
    result = run(*command, "-b", url)
    assert result.exit_code == 2
    line = one_error_line(result)
    assert reason in line and "secret" not in line
