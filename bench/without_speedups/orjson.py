"""On PYTHONPATH, makes ``import orjson`` fail: the benchmark's "without speedups" rows."""

raise ImportError("orjson is hidden by bench/without_speedups")
