"""Brokers that cannot carry events: one clear line at start, status 2."""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.servers import RedisServer, ServerError, free_port

pytestmark = pytest.mark.broker


class ClusterNode(RedisServer):
    """A redis-server with cluster mode on (one node is enough to be told apart)."""

    name = "redis-cluster-node"

    def _command(self):
        return [*super()._command(), "--cluster-enabled", "yes",
                "--cluster-config-file", str(self.workdir / "nodes.conf")]


@pytest.fixture
def cluster_node():
    workdir = Path(tempfile.mkdtemp(prefix="evtools-cluster-"))
    port = free_port()
    while port > 55535:  # redis-server refuses a cluster node whose bus port (+10000) would not fit
        port = free_port()
    node = ClusterNode(port, workdir)
    try:
        try:
            node.start()
        except ServerError as exc:
            pytest.fail(f"could not start a Redis Cluster node: {exc}", pytrace=False)
        yield node
    finally:
        node.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.mark.parametrize("mode", [["--dump"], [], ["--camera", "evtools.cameras.JSONLinesCamera",
                                                    "--camera-opt", "path=/dev/null"]],
                         ids=["dump", "monitor", "camera"])
def test_a_redis_cluster_node_is_refused_in_one_line(cluster_node, mode):
    done = subprocess.run([sys.executable, "-m", "evtools", "events", *mode, "-b", cluster_node.url],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if not line.startswith("-> ")]
    assert lines == [f"evtools: {cluster_node.url} is a Redis Cluster node: Redis Cluster shards "
                     "keys by slot and kombu's pub/sub fanout does not span slots, so events "
                     "cannot be received there"], done.stderr
