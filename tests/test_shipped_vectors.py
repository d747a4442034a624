"""The bundled films' section vectors shipped with the code (reports.shipped_vectors)."""

import logging

import numpy as np
import pytest
from django.core.management import call_command

from reports import facts, importing, ingest, shipped_vectors
from reports.embeddings import Embedder
from reports.encoder import bundled_model_hash
from reports.models import Movie, MovieSection, text_hash


@pytest.fixture
def shipped():
    known = shipped_vectors.shipped()
    assert known is not None, "reports/section_vectors.npz is missing or was made by other weights"
    return known


def test_the_file_holds_every_section_of_the_bundled_films_and_nothing_else(db, shipped):
    """When this fails, a change made the bundled films' sections read otherwise: a fresh start embeds the sections
    the file lacks (two minutes for all of them). Make it again: python manage.py import_movies, then
    python manage.py ship_vectors."""
    ingest.import_records(list(importing.wikipedia_records().values()))
    movie_ids = list(Movie.objects.filter(source=Movie.Source.WIKIPEDIA).values_list("id", flat=True))
    facts.import_facts(importing.wikidata_films(), movie_ids=movie_ids)
    sections = MovieSection.objects.filter(movie_id__in=movie_ids).select_related("movie")
    hashes = {text_hash(section.embedding_text) for section in sections}
    assert len(movie_ids) == 761
    assert sorted(hashes - set(shipped.rows)) == []
    assert sorted(set(shipped.rows) - hashes) == []


def test_the_shipped_vectors_are_the_models(db, shipped):
    sections = list(MovieSection.objects.filter(movie__source_key="Citizen Kane").select_related("movie"))
    texts = [section.embedding_text for section in sections]
    model = Embedder(threads=2, cache_size=1, dtype="float32").embed_batch(texts)
    kept = np.array([shipped.get(text_hash(text)) for text in texts])
    assert len(texts) == 3
    assert np.linalg.norm(kept, axis=1) == pytest.approx([1.0, 1.0, 1.0], abs=1e-6)
    assert min(np.sum(kept * model, axis=1)) >= 0.99999


def _sections_of(movie: Movie) -> list[MovieSection]:
    return list(MovieSection.objects.filter(movie=movie).select_related("movie").order_by("position"))


@pytest.fixture
def embedded_texts(monkeypatch):
    """The texts the model is given (the model itself stands in: a unit vector per text)."""
    seen: list[str] = []

    def fake_embed_texts(texts, *, batch_size=None, threads=None):
        texts = list(texts)
        seen.extend(texts)
        vectors = np.zeros((len(texts), 384), dtype=np.float32)
        vectors[:, 0] = 1.0
        return vectors

    monkeypatch.setattr(ingest, "embed_texts", fake_embed_texts)
    return seen


def test_an_import_takes_the_shipped_vectors_and_embeds_only_a_changed_section(sample_movies, shipped, embedded_texts):
    kane = sample_movies["Citizen Kane"]
    changed = _sections_of(kane)[1]
    MovieSection.objects.filter(movie=kane).update(embedding=None, embedded_hash="")
    changed.content += " A sentence the shipped file has never seen."
    changed.content_hash = text_hash(changed.embedding_text)
    changed.save(update_fields=["content", "content_hash"])

    assert ingest.embed_sections(movie_ids=[kane.pk]) == 3

    assert embedded_texts == [changed.embedding_text]
    first, second, third = _sections_of(kane)
    for section in (first, third):
        assert np.allclose(section.embedding, shipped.get(text_hash(section.embedding_text)), atol=1e-7)
        assert section.embedded_hash == section.content_hash
    assert second.embedding[0] == 1.0
    assert second.embedded_hash == second.content_hash


def test_with_the_shipped_vectors_turned_off_every_section_is_embedded(sample_movies, embedded_texts, settings):
    settings.EMBEDDING_SHIPPED_VECTORS = False
    kane = sample_movies["Citizen Kane"]
    MovieSection.objects.filter(movie=kane).update(embedding=None, embedded_hash="")
    assert ingest.embed_sections(movie_ids=[kane.pk]) == 3
    assert embedded_texts == sorted((s.embedding_text for s in _sections_of(kane)), key=len)


def test_a_file_made_by_other_weights_is_not_used(tmp_path, monkeypatch, caplog):
    path = tmp_path / "section_vectors.npz"
    shipped_vectors.write(path, ["a" * 64], np.ones((1, 384), dtype=np.float32), model_sha256="0" * 64)
    assert shipped_vectors.read(path).get("a" * 64) == pytest.approx(np.full(384, 1 / np.sqrt(384)), abs=1e-3)
    monkeypatch.setattr(shipped_vectors, "PATH", path)
    shipped_vectors.shipped.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="reports.shipped_vectors"):
            assert shipped_vectors.shipped() is None
        assert caplog.messages == [
            "The shipped section vectors were made by other weights than the installed model's: unused"
        ]
    finally:
        shipped_vectors.shipped.cache_clear()


def test_ship_vectors_writes_the_bundled_films_sections_as_the_model_embeds_them(sample_movies, tmp_path, capsys):
    path = tmp_path / "section_vectors.npz"
    call_command("ship_vectors", output=path, no_progress=True)
    written = shipped_vectors.read(path)
    sections = list(MovieSection.objects.filter(movie__source=Movie.Source.WIKIPEDIA).select_related("movie"))
    assert sorted(written.rows) == sorted(text_hash(section.embedding_text) for section in sections)
    assert written.model_sha256 == bundled_model_hash()
    # The test database's vectors were made by the model (or taken from the shipped file, made by it too).
    stored = np.array([section.embedding for section in sections])
    made = np.array([written.get(text_hash(section.embedding_text)) for section in sections])
    assert min(np.sum(stored * made, axis=1)) >= 0.99999
    assert capsys.readouterr().out.startswith(f"Wrote {len(sections)} section vectors to {path} (")


def test_the_workers_parts_of_bundled_films_need_no_model(sample_movies, monkeypatch):
    """What makes a fresh start serve the bundled films within seconds: their parts never wait for the model."""

    def no_model(texts, **kwargs):
        raise AssertionError(f"the model was asked to embed {len(list(texts))} text(s)")

    monkeypatch.setattr(ingest, "embed_texts", no_model)
    run = importing.plan(limit=6, part_films=3)
    assert run is not None
    results = [str(importing.run_part(part.pk)) for part in run.parts.order_by("number")]
    assert results == [
        "part 1: 3 films (0 new), 9 sections embedded",
        "part 2: 3 films (2 new), 7 sections embedded",
    ]
    assert importing.status().line() == "[########################] 16 of 16 films ready"
