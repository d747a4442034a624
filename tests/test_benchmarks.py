"""The benchmarks' own logic (no benchmark runs here): the stream client's HTTP chunk decoder, the text model's
derived vectors, and the report `make bench` writes, rebuilt from the committed results."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import benchmarks.__main__ as command
from benchmarks.corpora import SyntheticSection, VectorModels
from benchmarks.stream_client import dechunk

ROOT = Path(__file__).resolve().parent.parent


def test_the_chunk_decoder_takes_what_is_complete_and_keeps_the_rest():
    body = b"event: token\ndata: {}\n\n"
    raw = b"%x\r\n" % len(body) + body + b"\r\n" + b"5;ext=1\r\nhel"
    assert dechunk(raw) == (body, b"5;ext=1\r\nhel", False)
    assert dechunk(b"5;ext=1\r\nhello\r\n0\r\n\r\n") == (b"hello", b"", True)
    assert dechunk(b"1") == (b"", b"1", False)


def test_text_vectors_not_embedded_sit_from_their_source_as_a_drawn_embedded_one_does(monkeypatch):
    rng = np.random.default_rng(0)
    real = rng.standard_normal((6, 8))
    real /= np.linalg.norm(real, axis=1, keepdims=True)
    models = VectorModels.__new__(VectorModels)
    models.real = real.astype(np.float32)
    plan = [SyntheticSection(n // 3, n % 6, "plot", 0, "Plot", f"text {n}", str(n)) for n in range(12)]

    def embed(texts):  # each embedded text: its source turned by a known angle
        out = []
        for text in texts:
            source = real[int(text.split()[-1]) % 6]
            turn = np.roll(source, 1) - (np.roll(source, 1) @ source) * source
            out.append(0.8 * source + 0.6 * turn / np.linalg.norm(turn))
        return np.array(out, dtype=np.float32)

    monkeypatch.setattr("benchmarks.corpora.embed_generated", embed)
    vectors = models.text_vectors(plan, ["Film"] * 4, embedded=4)

    sources = real[[section.source for section in plan]]
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(np.sum(vectors * sources, axis=1), 0.8, atol=1e-5)
    embedded = [0, 4, 7, 11]  # spread evenly over the plan
    assert np.allclose(vectors[embedded], embed([plan[n].content for n in embedded]))


@pytest.fixture
def parts_run(monkeypatch, tmp_path):
    """The parts `python -m benchmarks` would run, with their arguments (nothing runs, nothing is written; each
    part takes 12 s), and the results it would report (`.reported`)."""
    calls = _Calls()

    def run_part(part, args):
        calls.append((part, args))
        return 12.0

    def write_report(results, bench_dir):
        calls.reported = results
        return ""

    monkeypatch.setattr(command, "run_part", run_part)
    monkeypatch.setattr(command, "prepare_base", lambda: None)
    monkeypatch.setattr(command, "read_parts", lambda bench_dir: {})
    monkeypatch.setattr(command, "write_report", write_report)
    return calls


class _Calls(list):
    """A list of the parts run, with the results reported."""

    reported: dict | None = None


def test_the_command_runs_every_part_or_those_named_with_their_own_options(parts_run, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["benchmarks", "--quick"])
    command.main()
    assert parts_run == [
        ("ingest", ["--quick"]),
        ("streams", ["--quick"]),
        ("pages", ["--quick"]),
        ("retrieval", ["--quick"]),
    ]
    # Each part's time, in the results and in the last line.
    seconds = parts_run.reported["machine"]["part_seconds"]
    assert [part for part in seconds] == ["ingest", "base database", "streams", "pages", "retrieval"]
    assert [seconds[part] for part in ("ingest", "streams", "pages", "retrieval")] == [12.0] * 4
    assert (
        capsys.readouterr()
        .out.rstrip()
        .endswith(
            f"(ingest 12 s, base database {seconds['base database']:.0f} s, streams 12 s, pages 12 s, retrieval 12 s)."
        )
    )

    parts_run.clear()
    monkeypatch.setattr(sys, "argv", ["benchmarks", "background", "--rounds", "5"])
    command.main()
    # Outside the default run, by name only.
    assert parts_run == [("background", ["--rounds", "5"])]

    parts_run.clear()
    monkeypatch.setattr(sys, "argv", ["benchmarks", "retrieval", "--quick", "--large", "--sizes", "10000"])
    command.main()
    # --large adds the real catalogue, beside the synthetic corpora.
    assert parts_run == [("retrieval", ["--quick", "--large", "--sizes", "10000"]), ("catalogue", ["--bench"])]

    parts_run.clear()
    monkeypatch.setattr(sys, "argv", ["benchmarks", "--only", "streams", "--levels", "5"])
    command.main()
    assert parts_run == [("streams", ["--levels", "5"])]


def test_a_part_s_own_options_need_that_part_alone(parts_run, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["benchmarks", "--quick", "--sizes", "10000"])
    with pytest.raises(SystemExit):
        command.main()
    assert parts_run == []


@pytest.mark.skipif(not (ROOT / "bench" / "streams.json").exists(), reason="no committed results")
def test_the_report_is_rebuilt_from_the_committed_results(tmp_path):
    for name in ("retrieval", "streams", "pages", "ingest", "db_connections"):
        shutil.copy(ROOT / "bench" / f"{name}.json", tmp_path)
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--report-only", "--bench-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    table = (tmp_path / "results.md").read_text()
    assert "| target | goal | measured | |" in table
    assert "| 500 concurrent streams: errors | 0 | 0 | met |" in table
    pages = json.loads((ROOT / "bench" / "pages.json").read_text())
    film = pages["variants"]["page threads, pages kept"]["pages"]["film page"]
    rps = f"{film['requests_per_second']:,.0f}"
    assert f"| Pages, film page: requests per second (wrk, 16 connections) | ≥ 476 | {rps} requests/s |" in table
    # The cross-film floor: the question's embedding and the HNSW scan alone, which the scan needs it for.
    retrieval = json.loads((ROOT / "bench" / "retrieval.json").read_text())
    corpus = next(c for c in retrieval["realistic_corpora"] if c["sections"] == 100_000)
    floor = corpus["embedding"]["cold"]["p50"] + corpus["cross_film_stages"]["vector"]["p50"]
    shown = f"{floor:,.1f} ms" if floor >= 10 else f"{floor:.2f} ms"  # two decimals below 10 ms
    assert f"the HNSW scan alone p50 (ef_search 150) | reported | {shown} |  |" in table
    # What the reader waits for at 100 at once: the first token.
    streams = json.loads((ROOT / "bench" / "streams.json").read_text())
    at_100 = next(level for level in streams["levels"] if level["concurrency"] == 100)
    shown = f"{at_100['server_timings_ms']['first_token_ms']['p50']:,.1f} ms"
    assert f"| First token p50 (server's first_token_ms), 100 streams opened at once | reported | {shown} |  |" in table
    seen = at_100["first_token_seen_ms"]["p50"]
    row = f"| First token p50 seen by the client, from its GET, 100 streams opened at once | reported | {seen:,.1f} ms"
    assert row in table
    assert (tmp_path / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_wrk_s_output_is_read_from_its_distribution_lines():
    from benchmarks.pages import parse_wrk

    out = """Running 10s test @ http://127.0.0.1:8000/
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    80.81ms   64.76ms   1.02s    77.50%
    Req/Sec   230.72     97.55   484.00     69.17%
  Latency Distribution
     50%  812.00us
     75%   80.19ms
     90%  170.55ms
     99%    1.20s
  2762 requests in 12.03s, 1.88MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 7
Requests/sec:    229.67
Transfer/sec:    160.36KB
"""
    assert parse_wrk(out) == {
        "requests_per_second": 229.67,
        "p50_ms": 0.81,
        "p99_ms": 1200.0,
        "requests": 2762,
        "non_2xx": 7,
        "socket_errors": 5,
    }


def test_the_writes_of_a_load_reach_the_disk_before_the_timing(db, monkeypatch):
    """`settle` asks for a checkpoint (the load's dirty buffers written now, not spread over the minutes the searches
    are timed in) and the kernel's write-back, and waits for no autovacuum worker."""
    from django.db import connection

    from benchmarks.corpora import settle
    from flickora.db import superuser_connection

    synced = []
    monkeypatch.setattr("benchmarks.corpora.os.sync", lambda: synced.append(True))
    with superuser_connection(Path(connection.get_connection_params()["host"]), "postgres") as admin:

        def requested() -> int:
            admin.execute("SELECT pg_stat_clear_snapshot()")
            return admin.execute("SELECT num_requested FROM pg_stat_checkpointer").fetchone()[0]

        before = requested()
        assert settle(admin, wait=5.0) >= 0.0
        assert (requested(), synced) == (before + 1, [True])


def test_the_recall_check_reads_each_neighbour_with_its_distance(sample_movies, populated):
    """`nearest` gives (section id, cosine distance) rows, nearest first, as the exact scan and the HNSW index find
    them: the recall and the distance ratio read the distance from them (until 2026-11-28 the ratio summed film ids)."""
    from benchmarks.retrieval import nearest
    from reports.models import MovieSection

    stored = {s.id: np.asarray(s.embedding, dtype=np.float64) for s in MovieSection.objects.exclude(embedding=None)}
    section = next(iter(sorted(stored)))
    vector = stored[section].astype(np.float32)
    exact_distances = {
        section_id: 1.0 - float(embedding @ vector) / float(np.linalg.norm(embedding) * np.linalg.norm(vector))
        for section_id, embedding in stored.items()
    }
    expected = sorted(exact_distances, key=lambda section_id: (exact_distances[section_id], section_id))[:10]
    _, rows = nearest(vector, ef=None)
    assert [section_id for section_id, _ in rows] == expected
    # (pgvector computes in float32.)
    assert [distance for _, distance in rows] == pytest.approx([exact_distances[i] for i in expected], abs=1e-5)
    # Through the index (which may miss a neighbour): ten rows, each with its own distance, nearest first.
    _, rows = nearest(vector, ef=150)
    assert len(rows) == 10
    assert [distance for _, distance in rows] == pytest.approx([exact_distances[i] for i, _ in rows], abs=1e-5)
    assert [distance for _, distance in rows] == sorted(distance for _, distance in rows)
    assert rows[0] == (section, pytest.approx(0.0, abs=1e-6))
