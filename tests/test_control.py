"""Remote control without a broker server: argument checks, Celery's message shapes (kombu's own
pidbox Node answering on the in-memory transport), reply formatting, and the command line."""

import json
import uuid

import click
import pytest
from click.testing import CliRunner
from kombu import Connection
from kombu.pidbox import Mailbox

from evtools import control, controlview
from evtools.cli import main
from evtools.config import Settings
from evtools.errors import ConfigurationError


def run(*args, **kwargs):
    return CliRunner().invoke(main, ["control", *args], **kwargs)


# -- the library's argument checks -------------------------------------------------------------

@pytest.mark.parametrize("rate", ["10/m", "10/s", "10/h", "10", "0", "0.5/m", ".5/s", " 2/s ", 3,
                                  0.25, 0])
def test_rates_workers_understand_are_accepted(rate):
    checked = control.check_rate(rate)
    assert checked == (rate.strip() if isinstance(rate, str) else rate)


@pytest.mark.parametrize("rate", ["ten/m", "10/d", "10/", "/m", "", "-1/s", "10 / m", "1e3",
                                  "nan", -1, float("inf"), float("nan"), True, None])
def test_rates_workers_would_choke_on_are_configuration_errors(rate):
    with pytest.raises(ConfigurationError, match="invalid rate limit"):
        control.check_rate(rate)


@pytest.mark.parametrize("given, name", [("TERM", "SIGTERM"), ("SIGKILL", "SIGKILL"),
                                         ("kill", "SIGKILL"), (" usr1 ", "SIGUSR1"),
                                         ("9", "SIGKILL"), (15, "SIGTERM")])
def test_signal_names_are_normalised_to_what_workers_expect(given, name):
    assert control.check_signal(given) == name


@pytest.mark.parametrize("given", ["SIGFOO", "FOO", "", "999", "SIG_DFL", -1])
def test_unknown_signals_are_configuration_errors(given):
    with pytest.raises(ConfigurationError, match="unknown signal"):
        control.check_signal(given)


def test_task_ids_and_names_cannot_be_empty():
    assert control.check_task_ids("abc") == ["abc"]
    assert control.check_task_ids(["a", " b "]) == ["a", "b"]
    for bad in ("", "  ", [], ["a", ""]):
        with pytest.raises(ConfigurationError, match="task id cannot be empty"):
            control.check_task_ids(bad)
    assert control.check_task_name(" proj.add ") == "proj.add"
    with pytest.raises(ConfigurationError, match="task name cannot be empty"):
        control.check_task_name(" ")


def test_a_bare_hostname_is_a_one_item_destination_and_an_empty_list_is_refused():
    assert control.check_destination(None) is None
    # A string would reach workers as is, and `"w1@h" in "xw1@hx"` is true on every worker.
    assert control.check_destination("w1@h") == ["w1@h"]
    assert control.check_destination(("w1@h", "w2@h")) == ["w1@h", "w2@h"]
    for bad in ([], [""], [" "]):
        with pytest.raises(ConfigurationError, match="destination"):
            control.check_destination(bad)


def test_library_checks_arguments_before_touching_the_connection():
    untouched = object()  # anything used as a connection would fail loudly
    with pytest.raises(ConfigurationError):
        control.revoke(untouched, "")
    with pytest.raises(ConfigurationError):
        control.revoke(untouched, "abc", terminate=True, signal="NOPE")
    with pytest.raises(ConfigurationError):
        control.rate_limit(untouched, "proj.add", "ten/m")
    with pytest.raises(ConfigurationError):
        control.ping(untouched, destination=[])


def test_the_mailbox_is_celerys():
    mailbox = control.mailbox_for()
    assert mailbox.exchange.name == "celery.pidbox" and mailbox.exchange.type == "fanout"
    assert mailbox.reply_exchange.name == "reply.celery.pidbox"
    assert control.mailbox_for(Settings(control_exchange="proj")).exchange.name == "proj.pidbox"


# -- Celery's message shapes, answered by kombu's own pidbox Node (what Celery workers run) ----

class FakeWorker:
    """A pidbox Node on the in-memory transport, answering like a Celery worker and recording."""

    def __init__(self, connection, settings, hostname="w1@test"):
        self.calls = []
        handlers = {name: self._handler(name, reply) for name, reply in {
            "ping": {"ok": "pong"},
            "enable_events": {"ok": "task events enabled"},
            "disable_events": {"ok": "task events disabled"},
            "heartbeat": None,
            "revoke": {"ok": "tasks flagged as revoked"},
            "rate_limit": {"ok": "new rate limit set successfully"},
        }.items()}
        node = control.mailbox_for(settings)(connection).Node(hostname, handlers=handlers,
                                                               channel=connection.channel())
        node.listen()

    def _handler(self, name, reply):
        def handle(state, **arguments):
            self.calls.append((name, arguments))
            return reply
        return handle


@pytest.fixture
def memory():
    """A memory:// connection, a control exchange of this test's own, and a worker on it."""
    settings = Settings(broker_url="memory://", control_exchange=f"t{uuid.uuid4().hex}")
    with Connection("memory://") as connection:
        yield connection, settings, FakeWorker(connection, settings)


@pytest.mark.parametrize("call, command, arguments", [
    (lambda c, **kw: control.ping(c, **kw), "ping", {}),
    (lambda c, **kw: control.enable_events(c, **kw), "enable_events", {}),
    (lambda c, **kw: control.disable_events(c, **kw), "disable_events", {}),
    (lambda c, **kw: control.revoke(c, "abc", **kw), "revoke",
     {"task_id": "abc", "terminate": False, "signal": "SIGTERM"}),
    (lambda c, **kw: control.revoke(c, ["a", "b"], terminate=True, signal="KILL", **kw), "revoke",
     {"task_id": ["a", "b"], "terminate": True, "signal": "SIGKILL"}),
    (lambda c, **kw: control.rate_limit(c, "proj.add", "10/m", **kw), "rate_limit",
     {"task_name": "proj.add", "rate_limit": "10/m"}),
])
def test_each_command_sends_celerys_arguments_and_returns_celerys_replies(memory, call, command,
                                                                          arguments):
    connection, settings, worker = memory
    replies = call(connection, timeout=0.2, settings=settings)
    assert worker.calls == [(command, arguments)]
    assert len(replies) == 1 and list(replies[0]) == ["w1@test"]
    assert "ok" in replies[0]["w1@test"]


def test_heartbeat_asks_for_no_reply(memory):
    connection, settings, worker = memory
    assert control.heartbeat(connection, settings=settings) == []
    connection.drain_events(timeout=0.2)  # deliver the command to the worker
    assert worker.calls == [("heartbeat", {})]


def test_a_destination_only_reaches_that_worker_and_ends_the_wait_early(memory):
    connection, settings, worker = memory
    FakeWorker(connection, settings, hostname="w2@test")
    assert control.ping(connection, destination=["w9@test"], timeout=0.2, settings=settings) == []
    assert worker.calls == []
    replies = control.ping(connection, destination=["w1@test"], timeout=30, settings=settings)
    assert replies == [{"w1@test": {"ok": "pong"}}]  # returned at once: every destination replied
    both = control.ping(connection, timeout=0.2, settings=settings)
    assert sorted(host for reply in both for host in reply) == ["w1@test", "w2@test"]


def test_the_reply_queue_is_deleted_after_each_call(memory, monkeypatch):
    connection, settings, _ = memory
    names = []
    original = Mailbox.get_reply_queue

    def spy(self):
        queue = original(self)
        names.append(queue.name)
        return queue
    monkeypatch.setattr(Mailbox, "get_reply_queue", spy)
    control.ping(connection, timeout=0.2, settings=settings)
    control.revoke(connection, "abc", timeout=0.2, settings=settings)
    assert len(set(names)) == 2
    assert all(name.endswith(f".reply.{settings.control_exchange}.pidbox") for name in names)
    channel = connection.default_channel
    assert not any(channel._has_queue(name) for name in names)
    assert not any(queue in names for queue, _, _ in channel.state.bindings)


def test_replies_that_are_not_json_are_ignored(memory, caplog):
    connection, settings, worker = memory
    mailbox = control.mailbox_for(settings)(connection)

    def pickled_reply(data, exchange, routing_key, ticket, **kwargs):
        mailbox._publish_reply(data, exchange, routing_key, ticket, serializer="pickle")
    node = mailbox.Node("w3@test", handlers={"ping": lambda state: {"ok": "pong"}},
                        channel=connection.channel())
    node.reply = pickled_reply
    node.listen()
    replies = control.ping(connection, timeout=0.2, settings=settings)
    assert replies == [{"w1@test": {"ok": "pong"}}]
    assert "ignoring a reply that is not JSON" in caplog.text


# -- formatting replies ------------------------------------------------------------------------

@pytest.mark.parametrize("reply, line", [
    ({"ok": "pong"}, "-> w1@h: OK pong"),
    ({"ok": "task events enabled"}, "-> w1@h: OK task events enabled"),
    ({"error": "unknown task"}, "-> w1@h: ERROR unknown task"),
    (None, "-> w1@h: OK"),
    ({"ok": ["a", "b"]}, '-> w1@h: OK ["a", "b"]'),
    ({"clock": 3}, '-> w1@h: OK {"clock": 3}'),
    ({"ok": "evil\n-> w2@h: OK forged\x1b[2J"}, "-> w1@h: OK evil\\n-> w2@h: OK forged\\x1b[2J"),
])
def test_each_reply_is_one_line_like_celery_control_says_it(reply, line):
    assert controlview.human_line("w1@h", reply) == line


def test_json_lines_carry_hostname_and_reply():
    line = controlview.json_line("w1@h", {"ok": "tab\there \u202e"})
    assert "\u202e" not in line and "\t" not in line
    assert json.loads(line) == {"hostname": "w1@h", "reply": {"ok": "tab\there \u202e"}}
    replies = [{"w1@h": {"ok": "pong"}}, {"w2@h": {"ok": "pong"}}]
    lines = list(controlview.reply_lines(replies, json_lines=True))
    assert [json.loads(line)["hostname"] for line in lines] == ["w1@h", "w2@h"]


def test_exit_status_says_whether_every_worker_answered_ok():
    assert controlview.exit_status([{"w1@h": {"ok": "pong"}}]) == 0
    assert controlview.exit_status([]) == 1
    assert controlview.exit_status([], expects_reply=False) == 0
    mixed = [{"w1@h": {"ok": "x"}}, {"w2@h": {"error": "unknown task"}}]
    assert controlview.exit_status(mixed) == 1


def test_destinations_may_be_repeated_or_comma_separated():
    assert controlview.destinations(()) is None
    assert controlview.destinations(["w1@h,w2@h", " w3@h ", ","]) == ["w1@h", "w2@h", "w3@h"]


def test_the_command_line_offers_exactly_the_commands_the_view_knows():
    command = main.commands["control"]
    choice = next(param.type for param in command.params if param.name == "command")
    assert isinstance(choice, click.Choice)
    assert sorted(choice.choices) == sorted(controlview.COMMANDS)


# -- the command line --------------------------------------------------------------------------

def test_help_documents_commands_arguments_and_examples():
    result = run("--help")
    assert result.exit_code == 0
    for text in ("revoke TASK_ID...", "rate_limit TASK_NAME RATE", "enable_events", "heartbeat",
                 "--destination", "--timeout", "--json", "--terminate", "--signal", "--broker",
                 "Examples:", "evtools control revoke"):
        assert text in result.output, text


@pytest.mark.parametrize("args, message", [
    (["revoke"], "evtools: revoke needs TASK_ID: evtools control revoke TASK_ID... "
                 "[--terminate [--signal SIG]]"),
    (["revoke", ""], "evtools: a task id cannot be empty"),
    (["rate_limit", "proj.add"], "evtools: rate_limit needs TASK_NAME RATE"),
    (["rate_limit", "proj.add", "ten/m"], "evtools: invalid rate limit 'ten/m'"),
    (["rate_limit", "proj.add", "10/m", "extra"], "evtools: rate_limit needs TASK_NAME RATE"),
    (["ping", "w1@h"], "evtools: ping takes no arguments"),
    (["revoke", "abc", "--terminate", "--signal", "NOPE"], "evtools: unknown signal 'NOPE'"),
    (["revoke", "abc", "--signal", "KILL"], "evtools: --signal says how to terminate"),
    (["ping", "--terminate"], "evtools: --terminate and --signal go with revoke"),
])
def test_argument_mistakes_are_one_line_before_any_broker_is_contacted(args, message):
    # An unreachable broker: the argument error must come first.
    result = run(*args, "-b", "amqp://guest:guest@127.0.0.1:1//")
    assert result.exit_code == 2, result.output
    assert result.output.splitlines() == [result.output.strip()]
    assert result.output.startswith(message), result.output
    assert "Traceback" not in result.output


def test_an_unknown_command_is_a_usage_error():
    result = run("shutdown")
    assert result.exit_code == 2 and "'shutdown' is not one of" in result.output


@pytest.mark.parametrize("url, expected", [
    ("foo://host", "unknown broker transport 'foo'"),
    ("amqp://guest:s3cret@127.0.0.1:1//", "cannot connect to amqp://guest:**@127.0.0.1:1//"),
])
def test_broker_problems_are_one_line_with_status_1(url, expected):
    result = run("ping", "-b", url)
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [result.output.strip()]
    assert result.output.startswith("evtools: ") and expected in result.output
    assert "s3cret" not in result.output and "Traceback" not in result.output


def test_no_reply_is_celerys_error_on_stderr_and_status_1():
    result = run("ping", "-b", "memory://", "--timeout", "0.1")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.strip() == "Error: No nodes replied within time constraint"


def test_heartbeat_expects_no_reply_and_succeeds():
    result = run("heartbeat", "-b", "memory://", "-d", "w1@h")
    assert result.exit_code == 0 and result.stdout == ""
    assert "heartbeat sent to w1@h" in result.stderr


def fake_send(replies, seen):
    def send(settings, call, destination, timeout):
        seen.update(call=call, destination=destination, timeout=timeout, url=settings.broker_url)
        return replies
    return send


def test_replies_print_one_line_each(monkeypatch):
    seen = {}
    replies = [{"w1@h": {"ok": "pong"}}, {"w2@h": {"ok": "pong"}}]
    monkeypatch.setattr(controlview, "_send", fake_send(replies, seen))
    result = run("ping", "-d", "w1@h,w2@h", "-t", "2.5", "-b", "redis://x:6379/0")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == ["-> w1@h: OK pong", "-> w2@h: OK pong"]
    assert seen == {"call": control.ping, "destination": ["w1@h", "w2@h"], "timeout": 2.5,
                    "url": "redis://x:6379/0"}


def test_json_output_parses(monkeypatch):
    replies = [{"w1@h": {"ok": "new rate limit set successfully"}}]
    monkeypatch.setattr(controlview, "_send", fake_send(replies, {}))
    result = run("rate_limit", "proj.add", "10/m", "--json")
    assert result.exit_code == 0
    assert [json.loads(line) for line in result.stdout.splitlines()] == [
        {"hostname": "w1@h", "reply": {"ok": "new rate limit set successfully"}}]


def test_an_error_reply_gives_status_1(monkeypatch):
    replies = [{"w1@h": {"ok": "x"}}, {"w2@h": {"error": "unknown task"}}]
    monkeypatch.setattr(controlview, "_send", fake_send(replies, {}))
    result = run("rate_limit", "nope", "10/m")
    assert result.exit_code == 1
    assert result.stdout.splitlines()[1] == "-> w2@h: ERROR unknown task"


def test_revoke_sends_the_checked_arguments(monkeypatch):
    seen = {}
    monkeypatch.setattr(controlview, "_send", fake_send([{"w1@h": {"ok": "terminate: a"}}], seen))
    result = run("revoke", "a", "b", "--terminate", "-s", "kill")
    assert result.exit_code == 0
    assert seen["call"].func is control.revoke
    assert seen["call"].keywords == {"task_id": ["a", "b"], "terminate": True,
                                     "signal": "SIGKILL"}


def test_the_process_title_names_the_command(monkeypatch):
    titles = []
    monkeypatch.setattr(controlview, "_send", fake_send([{"w1@h": None}], {}))
    monkeypatch.setattr(controlview, "set_process_title",
                        lambda mode, argv=None, prefix=None: titles.append((mode, prefix)))
    run("ping")
    assert titles == [("control", "evtools control")]
    from evtools.proctitle import title_for
    assert title_for("control", ["control", "ping", "-b", "redis://u:pw@h/0"],
                     prefix="evtools control") == "evtools control ping -b redis://u:**@h/0"
