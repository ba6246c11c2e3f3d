"""A real Celery worker on a real broker: evtools sees what Celery's own State sees."""

import time

from kombu import Connection

from evtools import states
from evtools.receiver import EventReceiver
from evtools.state import State
from tests.celery_compare import summarise
from tests.helpers import Capture, CeleryCapture, wait_for

FINAL = {"add": states.SUCCESS, "fail": states.FAILURE, "flaky": states.SUCCESS,
         "revoked_running": states.REVOKED, "revoked_waiting": states.REVOKED}


def comparable(summary):
    """Drop what depends on when each receiver read a message (heartbeat arrival times)."""
    for worker in summary["workers"].values():
        worker["heartbeats"] = bool(worker["heartbeats"])
    return summary


def run_workload(client):
    """Send tasks that succeed, fail, retry, get revoked, and a chain; return their ids."""
    ids = {
        "add": client.send_task("interop_tasks.add", args=(2, 3)).id,
        "fail": client.send_task("interop_tasks.fail", args=("kaput ☃",)).id,
        "flaky": client.send_task("interop_tasks.flaky", kwargs={"succeed_after": 1}).id,
        "revoked_running": client.send_task("interop_tasks.slow", args=(30,)).id,
        "revoked_waiting": client.send_task("interop_tasks.slow", args=(1,), countdown=30).id,
    }
    chain = (client.signature("interop_tasks.add", args=(1, 2))
             | client.signature("interop_tasks.add", args=(3,))
             | client.signature("interop_tasks.add", args=(4,)))
    ids["chain"] = chain.apply_async().id  # the last link
    return ids


def test_evtools_state_matches_celerys_state_for_a_real_worker(broker_url, celery_worker,
                                                               celery_client):
    ours = State()
    connection = Connection(broker_url)
    receiver = EventReceiver(connection, handlers={"*": ours.event})
    capture = Capture(receiver, wakeup=False).start()
    celery = CeleryCapture(broker_url).start()
    worker = celery_worker(broker_url, hostname="w1@interop")
    try:
        assert wait_for(lambda: "w1@interop" in ours.workers and "w1@interop" in celery.state.workers,
                        timeout=90), worker.log_tail()
        ids = run_workload(client=celery_client)

        def started(uuid):
            task = ours.tasks.get(uuid)
            return task is not None and task.state == states.STARTED
        assert wait_for(lambda: started(ids["revoked_running"]), timeout=60), worker.log_tail()
        assert wait_for(lambda: ids["revoked_waiting"] in ours.tasks and
                        ours.tasks[ids["revoked_waiting"]].state == states.RECEIVED, timeout=30)
        celery_client.control.revoke(ids["revoked_running"], terminate=True)
        celery_client.control.revoke(ids["revoked_waiting"])

        def settled(state):
            done = all(state.tasks.get(ids[key]) is not None and
                       state.tasks[ids[key]].state == expected for key, expected in FINAL.items())
            chain = state.tasks.get(ids["chain"])
            return done and chain is not None and chain.state == states.SUCCESS
        assert wait_for(lambda: settled(ours) and settled(celery.state), timeout=60), \
            (worker.log_tail(), {k: getattr(ours.tasks.get(v), "state", None) for k, v in ids.items()})
        assert worker.stop() == 0
        assert wait_for(lambda: ours.workers["w1@interop"].heartbeats == [] and
                        celery.state.workers["w1@interop"].heartbeats == [], timeout=30)
        time.sleep(0.5)
    finally:
        capture.stop()
        celery.stop()
        connection.release()
    theirs = comparable(summarise(celery.state))
    mine = comparable(summarise(ours))
    for key in ("tasks", "workers", "event_count", "task_count", "task_types", "by_time",
                "by_time_forward"):
        assert mine[key] == theirs[key], key
    # what the workload must have produced, seen through evtools alone
    tasks = ours.tasks
    assert tasks[ids["add"]].result == "5" and tasks[ids["add"]].client.startswith("gen")
    assert "kaput" in tasks[ids["fail"]].exception and tasks[ids["fail"]].traceback
    assert tasks[ids["flaky"]].retries == 1
    assert tasks[ids["revoked_running"]].terminated is True
    last = tasks[ids["chain"]]
    assert last.result == "10" and last.parent is not None and last.parent.parent is not None
    assert last.root is last.parent.parent and last.parent in last.root.children
    assert not receiver.dropped and not ours.dropped


def test_wakeup_asks_a_quiet_worker_for_a_heartbeat_at_once(broker_url, celery_worker):
    watcher_state = State()
    with Connection(broker_url) as connection:
        watcher = Capture(EventReceiver(connection, handlers={"*": watcher_state.event}),
                          wakeup=False).start()
        worker = celery_worker(broker_url, hostname="quiet@interop",
                               extra=("--heartbeat-interval", "120"))
        assert wait_for(lambda: "quiet@interop" in watcher_state.workers, timeout=90), \
            worker.log_tail()
        watcher.stop()
    heartbeats = []
    with Connection(broker_url) as connection:
        receiver = EventReceiver(connection, handlers={"worker-heartbeat": heartbeats.append})
        capture = Capture(receiver, wakeup=True).start()
        assert wait_for(lambda: heartbeats, timeout=10), worker.log_tail()
        capture.stop()
    assert heartbeats[0]["hostname"] == "quiet@interop"
