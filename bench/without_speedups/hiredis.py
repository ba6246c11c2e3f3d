"""On PYTHONPATH, makes ``import hiredis`` fail (redis-py then parses in Python): "without speedups"."""

raise ImportError("hiredis is hidden by bench/without_speedups")
