"""The monitor in a real pseudo-terminal (tmux): real brokers, a real Celery worker."""

import json
import random
import re

import pytest

from tests.integration.terminal import Terminal


@pytest.fixture
def terminal():
    opened = []

    def open_terminal(*args, **kwargs):
        term = Terminal(*args, **kwargs)
        opened.append(term)
        return term
    yield open_terminal
    for term in opened:
        term.close()


def task_lines(screen, name):
    return [line for line in screen.splitlines() if name in line]


def test_the_monitor_follows_a_real_worker_and_controls_it(broker_url, celery_worker, celery_client,
                                                           terminal):
    term = terminal("events", "-b", broker_url)
    assert term.wait_text("events: "), term.screen()
    worker = celery_worker(broker_url, hostname="w1@top")
    assert term.wait_text("Workers online: w1@top", timeout=90), (term.screen(), worker.log_tail())
    added = celery_client.send_task("interop_tasks.add", args=(2, 3)).id
    failed = celery_client.send_task("interop_tasks.fail").id
    assert term.wait_for(lambda s: any(added in l and "SUCCESS" in l for l in s.splitlines())
                         and any(failed in l and "FAILURE" in l for l in s.splitlines()), 60), \
        term.screen()

    # filter, then the info view of the selected (top) task
    term.keys("/")
    term.keys("interop_tasks.fail", literal=True)
    term.keys("Enter")
    assert term.wait_for(lambda s: failed in s and added not in s), term.screen()
    term.keys("g", "Enter")
    assert term.wait_text(f"info: {failed}"), term.screen()
    assert "name: interop_tasks.fail" in term.screen() and "exception: ValueError" in term.screen()
    term.keys("t")
    assert term.wait_text("Traceback (most recent call last)"), term.screen()
    term.keys("Escape", "/")
    term.keys("BSpace", "BSpace", "BSpace", "BSpace", "BSpace", "BSpace", "BSpace", "BSpace",
              "BSpace", "BSpace", "BSpace", "BSpace", "BSpace", "BSpace", "BSpace", "BSpace",
              "BSpace", "BSpace", "Enter")
    assert term.wait_for(lambda s: added in s and failed in s), term.screen()

    # revoke a running task from the monitor: the worker reports it revoked
    slow = celery_client.send_task("interop_tasks.slow", args=(60,)).id
    assert term.wait_for(lambda s: any(slow in l and "STARTED" in l for l in s.splitlines()), 60), \
        term.screen()
    term.keys("/")
    term.keys(slow, literal=True)
    term.keys("Enter", "g", "c")
    assert term.wait_text(f"Revoke {slow}?"), term.screen()
    term.keys("t")
    assert term.wait_text("w1@top: terminate:"), term.screen()
    term.keys("Escape")
    assert term.wait_for(lambda s: any(slow in l and "REVOKED" in l for l in s.splitlines()), 60), \
        term.screen()

    # the workers view
    term.keys("Escape", "w")
    assert term.wait_for(lambda s: re.search(r"w1@top\s+online", s) is not None), term.screen()
    term.keys("w")

    # resizing to anything, many times, never crashes
    sizes = [(20, 5), (19, 4), (10, 3), (200, 60), (33, 7)] + \
        [(random.randint(8, 160), random.randint(3, 50)) for _ in range(25)] + [(120, 40)]
    for width, height in sizes:
        term.resize(width, height)
    assert term.wait_text("events: "), term.screen()
    assert term.exited() is None

    term.keys("q")
    assert term.wait_for(lambda s: "EXIT=0" in s, 15), term.screen()


def recording(tmp_path, events):
    path = tmp_path / "rec.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return str(path)


def test_hostile_and_wide_text_is_drawn_inert_and_aligned(tmp_path, terminal):
    base = {"hostname": "w1@h", "clock": 1, "timestamp": 1795627933.0, "local_received": 1795627933.0}
    events = [dict(base, type="task-received", uuid="evil-1", name="x\x1b[2J\x1b]0;pwned\x07\u202egnp.exe",
                   args="()", kwargs="{}"),
              dict(base, type="task-received", uuid="wide-2", name="订单处理.处理", args="()",
                   kwargs="{}"),
              dict(base, type="task-received", uuid="plain-3", name="plain.task", args="()",
                   kwargs="{}")]
    term = terminal("events", "--replay", recording(tmp_path, events), "--speed", "0")
    assert term.wait_text("plain-3"), term.screen()
    screen = term.screen()
    [evil] = task_lines(screen, "evil-1")
    assert "\\x1b[2J" in evil and "\\u202e" in evil and "\\x07" in evil
    assert "pwned" in evil  # shown as text, never executed as a title change
    wide, plain = task_lines(screen, "wide-2")[0], task_lines(screen, "plain-3")[0]
    # the state column starts at the same cell on every row, wide characters or not
    from evtools.top.widestr import text_width
    assert text_width(wide[:wide.index("RECEIVED")]) == text_width(plain[:plain.index("RECEIVED")])
    term.keys("q")
    assert term.wait_text("EXIT=0", 15)


def test_a_monochrome_terminal_and_a_tiny_one_still_work(tmp_path, terminal):
    base = {"hostname": "w1@h", "clock": 1, "timestamp": 1795627933.0, "local_received": 1795627933.0}
    events = [dict(base, type=t, uuid="u1", name="n") for t in ("task-received", "task-failed")]
    term = terminal("events", "--replay", recording(tmp_path, events), "--speed", "0",
                    env={"TERM": "vt100"})
    assert term.wait_text("FAILURE"), term.screen()
    term.resize(19, 4)
    assert term.wait_text("terminal too small"), term.screen()
    term.resize(8, 2)
    assert term.wait_text("too smal"), term.screen()
    term.resize(80, 24)
    assert term.wait_text("FAILURE")
    term.keys("C-c")
    assert term.wait_text("EXIT=0", 15), term.screen()


def test_without_a_terminal_the_monitor_says_to_use_the_dump(broker_url):
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-m", "evtools", "events", "-b", broker_url],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 1
    assert done.stderr.strip() == ("evtools: the monitor needs a terminal: use --dump to print "
                                   "events instead")
    assert done.stdout == ""  # no screen was drawn, not even a terminal reset sequence
