"""Ingest benchmark: `import_movies` into a fresh database, and sections embedded per second by batch size and
torch thread count.

    python -m benchmarks ingest [--quick] [--sample N]

The import runs the real command (`manage.py import_movies`: read and classify the bundled films, split them into
sections, match their facts, give the sections their vectors) into a new database `flickora_ingest` on the bench
server, timed end to end, as a user runs it: the vectors come from the file shipped with the code
(`reports.shipped_vectors`), so the model's own pace is the sweep's. The sweep then embeds the same real sections
(what the importer embeds: title, heading and text) through the app's embedder, in the dtype the app runs
(`EMBEDDING_DTYPE`: bfloat16 where the CPU multiplies it in hardware, AMX, else float32), at each batch size and
thread count, after one warm-up batch (--quick: at the app's batch thread count and batch size only).
Then, without --quick, the other dtype for comparison: its throughput, how close the two dtypes' vectors are, a
query's embedding time in each, and whether retrieval over the real corpus finds the same top 10 in both. Writes
bench/ingest.json.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Sequence

from benchmarks.environment import BENCH_DIR, INGEST_DB, manage, recreate_database, setup_django, write_json
from benchmarks.questions import QUESTIONS

BATCH_SIZES = (16, 32, 64, 128)
THREADS = (1, 2)
# --quick (make bench): the thread count the app embeds batches with (EMBEDDING_BATCH_THREADS, 2 on 2 cores); one
# thread and the other dtype, which settled EMBEDDING_BATCH_THREADS and EMBEDDING_DTYPE, in the full run. On 2 busy
# cores each point takes 10 to 40 s, and the other dtype, emulated where the CPU lacks bfloat16, minutes.
QUICK_THREADS = (2,)
# --quick: the batch size the app embeds with (EMBEDDING_BATCH_SIZE); the others in the full run.
QUICK_BATCH_SIZES = (16,)


def run_import() -> dict[str, float | int]:
    """The import command into a fresh database, as a user runs it (migrate first, not timed)."""
    recreate_database(INGEST_DB)
    manage("migrate", "--noinput", database=INGEST_DB)
    print("import_movies into a fresh database ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    done = manage("import_movies", "--no-progress", database=INGEST_DB, capture=True)
    seconds = time.perf_counter() - started
    films = int(re.search(r"Films: (\d+) created", done.stdout).group(1))
    sections = int(re.search(r"Embedded (\d+) sections", done.stdout).group(1))
    command_seconds = float(re.search(r"Done in ([\d.]+) s", done.stdout).group(1))
    return {
        "films": films,
        "sections": sections,
        "seconds": round(seconds, 2),
        # What the command reports itself (from its handle(): without interpreter start-up and Django set-up).
        "command_seconds": command_seconds,
        "sections_per_second": round(sections / seconds, 2),
    }


def sweep(
    sample: int, rounds: int, threads_swept: Sequence[int], batch_sizes: Sequence[int]
) -> tuple[str, list[dict[str, float | int | str]]]:
    """Sections per second in the app's configuration at each batch size and thread count; and that dtype."""
    setup_django(INGEST_DB)
    from reports.embeddings import get_embedder
    from reports.models import MovieSection

    sections = list(MovieSection.objects.select_related("movie").order_by("id")[:sample])
    texts = [section.embedding_text for section in sections]
    embedder = get_embedder()
    embedder.embed_batch(texts[:32], batch_size=32, threads=2)  # load the model, warm the kernels
    rows = []
    for threads in threads_swept:
        for batch_size in batch_sizes:
            best = 0.0
            for _ in range(rounds):
                started = time.perf_counter()
                embedder.embed_batch(texts, batch_size=batch_size, threads=threads)
                best = max(best, len(texts) / (time.perf_counter() - started))
            rows.append(
                {
                    "threads": threads,
                    "batch_size": batch_size,
                    "dtype": embedder.dtype,
                    "sections_per_second": round(best, 1),
                }
            )
            print(
                f"  {embedder.dtype}, {threads} threads, batch {batch_size:>3}: {best:6.1f} sections/s",
                file=sys.stderr,
                flush=True,
            )
    return embedder.dtype, rows


def compare_dtypes(sample: int, *, agreement: bool) -> dict[str, object]:
    """The dtype the app does not run, against the one it does: throughput (2 threads), cosine between the two
    dtypes' vectors of each section, a query's embedding time in each (one thread), and with `agreement` whether
    retrieval over the real corpus finds the same top 10 for the benchmark's questions."""
    import numpy as np
    import torch

    from reports.embeddings import Embedder, get_embedder
    from reports.models import MovieSection

    texts = [s.embedding_text for s in MovieSection.objects.select_related("movie").order_by("id")]
    app = get_embedder()
    # The same weights, each embedder in its own dtype (its own copy of the model: a second load takes about a second).
    embedders = {dtype: Embedder(threads=1, cache_size=0, dtype=dtype) for dtype in ("float32", "bfloat16")}
    for embedder in embedders.values():
        embedder.embed_batch(texts[:16], batch_size=16, threads=2)  # load the model, warm the kernels
    other = "float32" if app.dtype == "bfloat16" else "bfloat16"
    reference = embedders[app.dtype].embed_batch(texts[:sample], batch_size=16, threads=2)
    rows = []
    for batch_size in BATCH_SIZES:
        started = time.perf_counter()
        vectors = embedders[other].embed_batch(texts[:sample], batch_size=batch_size, threads=2)
        rate = sample / (time.perf_counter() - started)
        cosine = np.sum(vectors * reference, axis=1)
        rows.append(
            {
                "threads": 2,
                "batch_size": batch_size,
                "dtype": other,
                "sections_per_second": round(rate, 1),
                "cosine_to_app_mean": round(float(cosine.mean()), 6),
                "cosine_to_app_min": round(float(cosine.min()), 6),
            }
        )
        print(f"  {other}, 2 threads, batch {batch_size:>3}: {rate:6.1f} sections/s", file=sys.stderr, flush=True)
    torch.set_num_threads(1)
    query_ms = {}
    for dtype, embedder in embedders.items():
        timings = []
        for question in QUESTIONS:
            started = time.perf_counter()
            embedder.embed_query(question)  # no cache (size 0): every call embeds
            timings.append((time.perf_counter() - started) * 1000)
        query_ms[dtype] = round(sorted(timings)[len(timings) // 2], 2)
    result: dict[str, object] = {
        "app_dtype": app.dtype,
        "dtype": other,
        "embedding": rows,
        "query_embed_ms_p50_one_thread": query_ms,
    }
    if agreement:
        top = {}
        for dtype, embedder in embedders.items():
            corpus = embedder.embed_batch(texts, batch_size=16, threads=2)
            questions = embedder.embed_batch(QUESTIONS, batch_size=16, threads=2)
            top[dtype] = np.argsort(-(questions @ corpus.T), axis=1)[:, :10]
        overlap = [len(set(a) & set(b)) / 10 for a, b in zip(top["bfloat16"], top["float32"], strict=True)]
        result["top_10_agreement"] = round(float(np.mean(overlap)), 4)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--quick", action="store_true", help="Fewer sections per point, fewer points (make bench: see QUICK_*)."
    )
    parser.add_argument("--sample", type=int, help="Sections embedded per sweep point (default 256, quick 128).")
    options = parser.parse_args()
    sample = options.sample or (128 if options.quick else 256)
    rounds = 1 if options.quick else 2

    imported = run_import()
    print(
        f"  {imported['films']} films, {imported['sections']} sections in {imported['seconds']:.1f} s "
        f"({imported['sections_per_second']:.1f} sections/s)",
        file=sys.stderr,
    )
    print(f"Embedding sweep: {sample} sections per point, best of {rounds}", file=sys.stderr, flush=True)
    dtype, rows = sweep(
        sample,
        rounds,
        QUICK_THREADS if options.quick else THREADS,
        QUICK_BATCH_SIZES if options.quick else BATCH_SIZES,
    )
    results = {
        "import": imported,
        "dtype": dtype,
        "embedding": rows,
        "sample_sections": sample,
        "rounds": rounds,
        "quick": options.quick,
    }
    if not options.quick:
        print(f"For comparison: the dtype the app does not run (it runs {dtype})", file=sys.stderr, flush=True)
        results["dtype_comparison"] = compare_dtypes(sample, agreement=True)
    write_json(BENCH_DIR / "ingest.json", results)


if __name__ == "__main__":
    main()
