import time
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from reports import shipped_vectors
from reports.embeddings import Embedder
from reports.encoder import bundled_model_hash
from reports.management.progress import progress_bar
from reports.models import EMBEDDING_DIMENSIONS, Movie, MovieSection, text_hash


class Command(BaseCommand):
    help = (
        "Write the shipped section vectors (reports/section_vectors.npz) again: the bundled Wikipedia films' sections "
        "in the database, embedded in float32. Import the films first (python manage.py import_movies)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--output", type=Path, default=shipped_vectors.PATH)
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        sections = (
            MovieSection.objects.filter(movie__source=Movie.Source.WIKIPEDIA)
            .exclude(origin=MovieSection.Origin.GENERATED)  # an LLM's text is not the bundled data's
            .select_related("movie")
        )
        texts = sorted({section.embedding_text for section in sections}, key=len)
        # float32 whatever EMBEDDING_DTYPE says: the file serves every machine, bfloat16 or not.
        embedder = Embedder(threads=settings.EMBEDDING_BATCH_THREADS, cache_size=1, dtype="float32")
        batches = [texts[start : start + 256] for start in range(0, len(texts), 256)]
        vectors = [
            embedder.embed_batch(batch, batch_size=settings.EMBEDDING_BATCH_SIZE)
            for batch in progress_bar(not options["no_progress"], self.stderr)(batches, "Embedding batches")
        ]
        shipped_vectors.write(
            options["output"],
            [text_hash(text) for text in texts],
            np.concatenate(vectors) if vectors else np.zeros((0, EMBEDDING_DIMENSIONS), dtype=np.float32),
            model_sha256=bundled_model_hash(),
        )
        size = options["output"].stat().st_size / 1e6
        self.stdout.write(
            f"Wrote {len(texts)} section vectors to {options['output']} ({size:.1f} MB) "
            f"in {time.perf_counter() - started:.0f} s."
        )
