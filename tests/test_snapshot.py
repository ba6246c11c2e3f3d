"""Polaroid takes pictures on a real timer, rate-limited, frozen, and survives its errors."""

import logging
import threading
import time

import pytest

from evtools.errors import ConfigurationError
from evtools.snapshot import Polaroid, parse_rate
from evtools.state import State


class Recorder(Polaroid):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.shots = []
        self.cleanups = 0

    def on_shutter(self, state):
        self.shots.append(len(state.tasks))

    def on_cleanup(self):
        self.cleanups += 1


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


@pytest.mark.parametrize("text, per_second", [("10/m", 10 / 60), ("2/h", 2 / 3600),
                                               ("0.5/s", 0.5), ("3", 3.0), (4, 4.0)])
def test_parse_rate(text, per_second):
    assert parse_rate(text) == pytest.approx(per_second)


def test_a_bad_rate_is_a_clear_error():
    with pytest.raises(ConfigurationError, match="invalid rate"):
        parse_rate("ten/minute")


def test_shutter_and_cleanup_run_on_the_timer():
    state = State()
    state.get_or_create_task("t")
    with Recorder(state, freq=0.05, cleanup_freq=0.05) as camera:
        assert wait_for(lambda: len(camera.shots) >= 3 and camera.cleanups >= 2)
    assert set(camera.shots) == {1}


def test_cancel_takes_one_last_picture():
    camera = Recorder(State(), freq=3600)
    camera.install()
    camera.cancel()
    assert camera.shots == [0]


def test_maxrate_caps_the_pictures():
    camera = Recorder(State(), freq=0.01, maxrate="2/s")
    for _ in range(20):
        camera.capture()
    assert len(camera.shots) == 1  # the bucket holds one token to begin with


def test_clear_after_empties_the_state_after_each_picture():
    class Clearing(Recorder):
        clear_after = True
    state = State()
    event = {"hostname": "w", "timestamp": 1.0, "local_received": 1.0}
    state.event({"type": "task-succeeded", "uuid": "done", "clock": 1, **event})
    state.event({"type": "task-started", "uuid": "busy", "clock": 2, **event})
    camera = Clearing(state)
    camera.capture()
    camera.capture()
    assert camera.shots == [2, 1]  # finished tasks go, running ones stay (as in Celery)


def test_the_state_is_frozen_while_the_shutter_runs():
    state = State()
    inside, release = threading.Event(), threading.Event()
    applied = []

    class Slow(Polaroid):
        def on_shutter(self, state):
            inside.set()
            release.wait(5)

    camera = Slow(state)
    shooter = threading.Thread(target=camera.capture)
    shooter.start()
    assert inside.wait(5)
    feeder = threading.Thread(target=lambda: applied.append(state.event(
        {"type": "task-received", "uuid": "u", "hostname": "w", "clock": 1})))
    feeder.start()
    time.sleep(0.1)
    assert applied == []
    release.set()
    shooter.join(5)
    feeder.join(5)
    assert len(applied) == 1


def test_signals_are_sent_with_the_state():
    state = State()
    camera = Polaroid(state)
    received = []
    camera.shutter_signal.connect(lambda signal, sender, **kw: received.append(("shutter", sender)))
    camera.cleanup_signal.connect(lambda signal, sender, **kw: received.append(("cleanup", sender)))
    camera.capture()
    camera.cleanup()
    assert received == [("shutter", state), ("cleanup", state)]


def test_a_failing_shutter_is_logged_and_the_timer_keeps_going(caplog):
    class Broken(Polaroid):
        calls = 0

        def on_shutter(self, state):
            Broken.calls += 1
            raise RuntimeError("disk on fire")

    with caplog.at_level(logging.ERROR):
        with Broken(State(), freq=0.03) as camera:
            assert wait_for(lambda: Broken.calls >= 3)
        assert camera.timer.errors >= 3
    failures = [r for r in caplog.records if r.exc_info and "disk on fire" in str(r.exc_info[1])]
    assert len(failures) >= 3


def test_load_camera_names_every_problem():
    from evtools.errors import CameraError
    from evtools.snapshot import load_camera
    assert load_camera("evtools.cameras.SQLiteCamera").__name__ == "SQLiteCamera"
    for path, message in [("Plain", "not a dotted path"), ("no_such_mod_x.Cam", "cannot import"),
                          ("evtools.cameras.Nope", "has no camera 'Nope'"),
                          ("evtools.state.State", "is not a camera")]:
        with pytest.raises(CameraError, match=message):
            load_camera(path)


def test_skip_unchanged_counts_pictures_it_did_not_take():
    class Lazy(Recorder):
        skip_unchanged = True
    state = State()
    camera = Lazy(state)
    camera.capture()
    camera.capture()
    state.event({"type": "task-received", "uuid": "u", "hostname": "w", "clock": 1})
    camera.capture()
    assert (len(camera.shots), camera.skipped, camera.shutters) == (2, 1, 2)


def test_evcam_refuses_an_unknown_log_level_before_touching_logging():
    from evtools.snapshot import evcam
    handlers = list(logging.getLogger().handlers)
    with pytest.raises(ConfigurationError, match="unknown log level 'LOUD'"):
        evcam(Recorder, loglevel="loud")
    assert logging.getLogger().handlers == handlers


def test_snapshot_does_not_import_the_command_layer():
    import ast
    import inspect

    import evtools.snapshot
    tree = ast.parse(inspect.getsource(evtools.snapshot))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not imported & {"commands", "cli", "options"}
