"""Importing evtools is light: no broker library and no read-ahead transport until a connection."""

import json
import subprocess
import sys

#: What only a connection may load: the read-ahead transports and the internals they use.
TRANSPORT_MODULES = {"evtools.transport.amqp", "evtools.transport.redis",
                     "evtools.transport.filesystem", "redis._parsers.socket",
                     "kombu.transport.pyamqp", "kombu.transport.redis"}


def modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running ``code``."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True, timeout=60)
    return set(json.loads(result.stdout.splitlines()[-1]))


def test_importing_evtools_states_and_state_loads_no_broker_library():
    loaded = modules_after("import evtools, evtools.states, evtools.state")
    assert {name for name in loaded if name.split(".")[0] in ("kombu", "amqp", "redis")} == set()
    assert "evtools.transport" not in loaded


def test_the_library_and_the_cli_load_no_read_ahead_transport_before_connecting():
    loaded = modules_after("import evtools.receiver, evtools.dispatcher, evtools.snapshot, "
                           "evtools.source, evtools.cli, evtools.transport.broker")
    assert loaded & TRANSPORT_MODULES == set()


def test_a_connection_loads_its_read_ahead_transport_and_no_other():
    loaded = modules_after("import evtools\nevtools.connect('amqp://127.0.0.1:1//')")
    assert "evtools.transport.amqp" in loaded
    assert "evtools.transport.redis" not in loaded


def test_public_names_are_there_when_asked_for():
    import evtools
    from evtools.receiver import EventReceiver
    from evtools.transport import connect
    assert evtools.EventReceiver is EventReceiver and evtools.connect is connect
    assert set(evtools.__all__) <= set(dir(evtools))
