"""flickora's benchmarks: ingest, streams and retrieval, each on an embedded PostgreSQL of its own (var/bench), and
the report of them (bench/results.md). Run them with `python -m benchmarks` (see benchmarks/__main__.py)."""
