"""The benchmark scripts' own logic: the stream client's HTTP chunk decoder, and the report `make bench` writes,
rebuilt from the committed results (no benchmark runs here)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from bench_stream import _dechunk  # noqa: E402


def test_the_chunk_decoder_takes_what_is_complete_and_keeps_the_rest():
    body = b"event: token\ndata: {}\n\n"
    raw = b"%x\r\n" % len(body) + body + b"\r\n" + b"5;ext=1\r\nhel"
    assert _dechunk(raw) == (body, b"5;ext=1\r\nhel", False)
    assert _dechunk(b"5;ext=1\r\nhello\r\n0\r\n\r\n") == (b"hello", b"", True)
    assert _dechunk(b"1") == (b"", b"1", False)


@pytest.mark.skipif(not (ROOT / "bench" / "streams.json").exists(), reason="no committed results")
def test_the_report_is_rebuilt_from_the_committed_results(tmp_path):
    for name in ("retrieval", "streams", "ingest", "db_connections"):
        shutil.copy(ROOT / "bench" / f"{name}.json", tmp_path)
    run = subprocess.run(
        [sys.executable, "scripts/bench_all.py", "--report-only", "--bench-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    table = (tmp_path / "results.md").read_text()
    assert "| target | goal | measured | |" in table
    assert "| 1,000 concurrent streams: errors | 0 | 0 | met |" in table
    assert (tmp_path / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
