"""Plot bench/results.json into bench/latency.png: retrieval latency against corpus size (HNSW against the exact
scan), recall@10 against ef_search, and stream latency against concurrency.

    .venv/bin/python scripts/plot_bench.py [bench/results.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_retrieval(axis: Any, retrieval: dict[str, Any]) -> None:
    calibrated = retrieval["noise"]["calibrated"]
    corpora = sorted(
        (corpus for corpus in retrieval["corpora"] if corpus.get("noise") != calibrated),
        key=lambda corpus: corpus["sections"],
    )
    sizes = [corpus["sections"] for corpus in corpora]
    default_ef = str(retrieval["default_ef_search"])
    series = [
        ("exact scan, no HNSW (hybrid query)", "tab:red", "o", [c["exact"]["hybrid_ms"] for c in corpora]),
        (
            f"cross-film, new question (embed + HNSW ef {default_ef})",
            "tab:purple",
            "s",
            [c["cross_film_end_to_end"]["cold"] for c in corpora],
        ),
        (
            f"cross-film, cached question (HNSW ef {default_ef})",
            "tab:blue",
            "^",
            [c["cross_film_end_to_end"]["cached"] for c in corpora],
        ),
        ("per film, new question (embed + FILM_SQL)", "tab:green", "D", [c["per_film"]["cold"] for c in corpora]),
        ("per film, cached question", "tab:olive", "v", [c["per_film"]["cached"] for c in corpora]),
    ]
    for label, color, marker, points in series:
        axis.plot(sizes, [p["p50"] for p in points], marker=marker, color=color, label=f"{label} p50")
        axis.plot(sizes, [p["p99"] for p in points], marker=marker, color=color, linestyle=":", alpha=0.6)
    axis.axhline(15, color="grey", linestyle="--", linewidth=0.8)
    axis.text(sizes[0], 15 * 1.08, "target 15 ms (new question)", color="grey", fontsize=7)
    axis.axhline(3, color="grey", linestyle="--", linewidth=0.8)
    axis.text(sizes[0], 3 * 1.08, "target 3 ms (cached)", color="grey", fontsize=7)
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("sections in the corpus")
    axis.set_ylabel("milliseconds (solid p50, dotted p99)")
    axis.set_title("Retrieval latency against corpus size (small-noise corpora)")
    axis.set_xticks(sizes, [f"{size:,}" for size in sizes])
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=7, loc="upper left")


def plot_recall(axis: Any, retrieval: dict[str, Any]) -> None:
    efs = retrieval["ef_search_values"]
    for corpus in sorted(retrieval["corpora"], key=lambda corpus: corpus["sections"]):
        recall = [corpus["hnsw"][str(ef)]["recall_at_10"] for ef in efs]
        latency = [corpus["hnsw"][str(ef)]["hybrid_ms"]["p50"] for ef in efs]
        noise = corpus.get("noise")
        kind = (
            "real"
            if noise is None
            else "calibrated noise"
            if noise == retrieval["noise"]["calibrated"]
            else "small noise"
        )
        line = axis.plot(efs, recall, marker="o", label=f"{corpus['sections']:,} sections ({kind})")[0]
        for ef, value, ms in zip(efs, recall, latency, strict=True):
            axis.annotate(
                f"{ms:.1f} ms",
                (ef, value),
                textcoords="offset points",
                xytext=(4, -10),
                fontsize=6,
                color=line.get_color(),
            )
    axis.axhline(0.98, color="grey", linestyle="--", linewidth=0.8)
    axis.axvline(retrieval["default_ef_search"], color="grey", linestyle=":", linewidth=0.8)
    axis.set_xlabel("hnsw.ef_search (dotted: the app's default)")
    axis.set_ylabel("recall@10 against the exact scan")
    axis.set_title("HNSW recall (labels: hybrid query p50)")
    axis.set_xticks(efs)
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=7, loc="lower right")


def plot_streams(axis: Any, streams: dict[str, Any]) -> None:
    levels = [streams["unloaded"], *streams["levels"]] if streams.get("unloaded") else streams["levels"]
    counts = [level["concurrency"] for level in levels]
    series = [
        ("first SSE byte", "tab:blue", "o", "ttfb_ms"),
        ("request → upstream (server)", "tab:green", "s", "upstream_ms"),
        ("added gap between tokens", "tab:red", "^", "added_gap_ms"),
    ]
    for label, color, marker, key in series:
        p50 = [level[key]["p50"] for level in levels]
        p99 = [level[key]["p99"] for level in levels]
        axis.plot(counts, p50, marker=marker, color=color, label=f"{label} p50")
        axis.plot(counts, p99, marker=marker, color=color, linestyle=":", alpha=0.6, label=f"{label} p99")
    axis.axhline(100, color="grey", linestyle="--", linewidth=0.8)
    axis.axhline(20, color="grey", linestyle="--", linewidth=0.8)
    axis.set_xscale("log")
    # Linear below 1 ms: the added gap is about zero (and can be slightly negative) when nothing queues.
    axis.set_yscale("symlog", linthresh=1)
    axis.set_ylim(bottom=-1)
    axis.set_xticks(
        counts,
        [
            (f"{level['concurrency']:,}" if level["concurrency"] > 1 else "1 at a time")
            + f"\n{level['errors']}\nerrors"
            for level in levels
        ],
        fontsize=7,
    )
    axis.set_xlabel("concurrent chat streams")
    axis.set_ylabel("milliseconds (targets: 20 ms first byte, 100 ms gap p99)")
    axis.set_title(
        f"Streams: {streams['workers']} workers, {streams['tokens']} tokens at {streams['tokens_per_second']:g}/s"
    )
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=7, loc="lower right")


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "bench/results.json")
    results = json.loads(path.read_text())
    panels = [name for name in ("retrieval", "retrieval_recall", "streams") if name.split("_")[0] in results]
    figure, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 5.5), squeeze=False)
    for axis, name in zip(axes[0], panels, strict=True):
        if name == "retrieval":
            plot_retrieval(axis, results["retrieval"])
        elif name == "retrieval_recall":
            plot_recall(axis, results["retrieval"])
        else:
            plot_streams(axis, results["streams"])
    info = results["machine"]
    figure.suptitle(
        f"flickora benchmarks, {info['date']}: {info['nproc']} × {info['cpu']}, {info['ram_gb']} GB RAM "
        f"({results['command']})",
        fontsize=10,
    )
    figure.tight_layout()
    output = path.with_name("latency.png")
    figure.savefig(output, dpi=110)
    print(f"Wrote {output}", file=sys.stderr)


if __name__ == "__main__":
    main()
