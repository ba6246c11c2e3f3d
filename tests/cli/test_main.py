"""The command line: modes, one-line errors, exit statuses; driven through click's CliRunner."""

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from evtools import __version__
from evtools.cli import main


def run(*args, **kwargs):
    return CliRunner().invoke(main, list(args), catch_exceptions=False, **kwargs)


def test_version_and_help():
    assert run("--version").output.splitlines()[0] == f"evtools, version {__version__}"
    help_text = run("events", "--help").output
    assert "-d, --dump" in help_text and "-D, --detach" in help_text
    assert "-d is --dump" in help_text and "--detach is -D" in help_text
    for option in ("--broker", "--app", "--exchange", "--queue-prefix", "--queue-ttl",
                   "--queue-expires", "--loglevel", "--json", "--type", "--hostname", "--task",
                   "--replay", "--speed", "--camera", "--frequency", "--maxrate"):
        assert option in help_text, option


def test_python_dash_m_works():
    done = subprocess.run([sys.executable, "-m", "evtools", "--version"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and __version__ in done.stdout


@pytest.mark.parametrize("url, expected", [
    ("foo://host", "unknown broker transport 'foo'"),
    ("redis://host:notaport/0", "malformed broker URL 'redis://host:notaport/0'"),
    ("localhost:6379", "malformed broker URL 'localhost:6379'"),
    ("amqp://guest:s3cret@127.0.0.1:1//", "cannot connect to amqp://guest:**@127.0.0.1:1//"),
])
def test_broker_problems_are_one_line_without_traceback(url, expected):
    result = CliRunner().invoke(main, ["events", "--dump", "-b", url])
    lines = [line for line in result.output.splitlines() if not line.startswith("-> evdump")]
    assert result.exit_code == 1
    assert len(lines) == 1 and lines[0].startswith("evtools: ") and expected in lines[0]
    assert "Traceback" not in result.output and "s3cret" not in result.output


def test_broker_option_works_before_or_after_the_subcommand():
    result = CliRunner().invoke(main, ["-b", "foo://x", "events", "--dump"])
    assert "unknown broker transport 'foo'" in result.output
    result = CliRunner().invoke(main, ["-b", "foo://x", "events", "--dump", "-b", "bar://y"])
    assert "unknown broker transport 'bar'" in result.output


@pytest.mark.parametrize("args, message", [
    (["events", "--json"], "--json and --record work with --dump"),
    (["events", "-t", "task-*"], "add --dump"),
    (["events", "--detach"], "add --camera"),
    (["events", "--dump", "--camera", "x.Y"], "choose one mode"),
    (["events", "-l", "LOUD", "--dump"], "Invalid value for '-l'"),
])
def test_usage_mistakes_are_reported_with_status_2(args, message):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and message in result.output
    assert "Traceback" not in result.output


def test_an_unimportable_app_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["-A", "no_such_proj_xyz", "events", "--dump"])
    assert result.exit_code == 2
    assert result.output.strip() == ("evtools: cannot import app 'no_such_proj_xyz': "
                                     "No module named 'no_such_proj_xyz'")


def test_replay_through_the_dump_prints_each_recorded_event(tmp_path):
    recording = tmp_path / "rec.jsonl"
    events = [{"type": "task-received", "uuid": "u1", "hostname": "w1@h", "clock": 3,
               "timestamp": 1795627933.17, "local_received": 1795627933.2, "name": "proj.add",
               "args": "(1,)", "kwargs": "{}"},
              {"type": "task-succeeded", "uuid": "u1", "hostname": "w1@h", "clock": 4,
               "timestamp": 1795627934.0, "local_received": 1795627934.1, "result": "2"}]
    recording.write_text("".join(json.dumps(e) + "\n" for e in events) + "junk\n")
    result = CliRunner().invoke(
        main, ["events", "--replay", str(recording), "--speed", "0", "--dump"])
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "w1@h [2026-11-25 17:32:13.170000+00:00] task received: proj.add(u1) args=(1,) "
        "kwargs={} clock=3, local_received=1795627933.2",
        "w1@h [2026-11-25 17:32:14+00:00] task succeeded: proj.add(u1) args=(1,) kwargs={} "
        "clock=4, local_received=1795627934.1, result=2"]
    assert "-> evdump: starting capture..." in result.stderr
    assert "skipping line 3" in result.stderr


def test_replay_from_stdin_as_json_with_a_filter():
    lines = "\n".join(json.dumps({"type": t, "hostname": "h", "clock": 1, "timestamp": 1.0})
                      for t in ("worker-online", "worker-heartbeat", "worker-offline"))
    result = CliRunner().invoke(
        main, ["events", "--replay", "-", "--speed", "0", "--dump", "--json", "-t", "*beat"],
        input=lines)
    assert [json.loads(line)["type"] for line in result.stdout.splitlines()] == ["worker-heartbeat"]


def test_a_missing_recording_is_a_usage_error():
    result = CliRunner().invoke(main, ["events", "--replay", "/nonexistent/rec.jsonl", "--dump"])
    assert result.exit_code == 2 and "No such file or directory" in result.output


def test_without_a_terminal_the_monitor_suggests_the_dump():
    result = CliRunner().invoke(main, ["events", "-b", "memory://"])
    assert result.exit_code == 1
    assert result.output.strip() == ("evtools: the monitor needs a terminal: use --dump to print "
                                     "events instead")


def test_replay_survives_deeply_nested_lines_with_one_warning(tmp_path):
    recording = tmp_path / "rec.jsonl"
    good = [json.dumps({"type": "worker-online", "hostname": f"w{n}@h", "clock": n,
                        "timestamp": 1.0}) for n in (1, 2, 3)]
    recording.write_text("\n".join([
        good[0], "[" * 100000 + "]" * 100000, good[1], '{"a":' * 50000 + "1" + "}" * 50000,
        good[2]]) + "\n")
    result = subprocess.run([sys.executable, "-m", "evtools", "events", "--replay", str(recording),
                             "--speed", "0", "--dump"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert [line.split()[0] for line in result.stdout.splitlines()] == ["w1@h", "w2@h", "w3@h"]
    warnings = [line for line in result.stderr.splitlines() if "skipping line" in line]
    assert len(warnings) == 1 and "line 2" in warnings[0] and "nested too deeply" in warnings[0]
    assert "Traceback" not in result.stderr
