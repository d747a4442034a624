"""Draw bench/latency.png from bench/results.json: retrieval latency against corpus size (HNSW against the exact
scan, on the realistic corpora where there are some), recall@10 against ef_search for each corpus model, and stream
latency against concurrency. Whatever is missing from the JSON is left out.
(The report calls it; `python -m benchmarks --report-only` redraws it from the JSON files.)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from benchmarks.results import all_corpora, default_ef_search, dig

MODEL_STYLE = {
    "real": ("tab:gray", "real sections only"),
    "text": ("tab:green", "generated text, embedded"),
    "covariance": ("tab:blue", "covariance-shaped (realistic)"),
    "small": ("tab:orange", "STRESS isotropic, small"),
    "calibrated": ("tab:red", "STRESS isotropic, calibrated"),
}


def latency_corpora(retrieval: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """One corpus per size: covariance where measured, else embedded text, else the real sections alone; the
    small-noise stress case only when a size has nothing else (older JSON). And what the series is."""
    by_size: dict[int, dict[str, dict[str, Any]]] = {}
    for corpus in all_corpora(retrieval):
        by_size.setdefault(corpus["sections"], {})[corpus["model"]] = corpus
    chosen = []
    for size in sorted(by_size):
        models = by_size[size]
        model = next((m for m in ("covariance", "text", "real", "small", "calibrated") if m in models), None)
        if model:
            chosen.append(models[model])
    kinds = sorted({c["model"] for c in chosen}, key=list(MODEL_STYLE).index)
    return chosen, " + ".join(MODEL_STYLE[k][1].replace("STRESS ", "stress: ") for k in kinds)


def plot_retrieval(axis: Any, retrieval: dict[str, Any]) -> None:
    corpora, kinds = latency_corpora(retrieval)
    if not corpora:
        axis.set_axis_off()
        return
    sizes = [corpus["sections"] for corpus in corpora]
    default_ef = default_ef_search(retrieval)
    series = [
        ("exact scan, no HNSW (hybrid query)", "tab:red", "o", ("exact", "hybrid_ms")),
        (
            f"cross-film, new question (embed + HNSW ef {default_ef})",
            "tab:purple",
            "s",
            ("cross_film_end_to_end", "cold"),
        ),
        (f"cross-film, cached question (HNSW ef {default_ef})", "tab:blue", "^", ("cross_film_end_to_end", "cached")),
        ("per film, new question (embed + FILM_SQL)", "tab:green", "D", ("per_film", "cold")),
        ("per film, cached question", "tab:olive", "v", ("per_film", "cached")),
    ]
    for label, color, marker, keys in series:
        _p50_and_p99(axis, sizes, corpora, keys, label=label, color=color, marker=marker, label_p99=False)
    for target, text in ((20, "target 20 ms (new question)"), (3, "target 3 ms (cached)")):
        axis.axhline(target, color="grey", linestyle="--", linewidth=0.8)
        axis.text(sizes[0], target * 1.08, text, color="grey", fontsize=7)
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("sections in the corpus")
    axis.set_ylabel("milliseconds (solid p50, dotted p99)")
    axis.set_title(f"Retrieval latency against corpus size\n({kinds})", fontsize=10)
    axis.set_xticks(sizes, [f"{size:,}" for size in sizes])
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=7, loc="upper left")


def plot_recall(axis: Any, retrieval: dict[str, Any]) -> None:
    default_ef = default_ef_search(retrieval)
    sizes = sorted({c["sections"] for c in all_corpora(retrieval)})
    markers = dict(zip(sizes, "os^Dvp*", strict=False))
    efs_seen: set[int] = set()
    for corpus in all_corpora(retrieval):
        color, name = MODEL_STYLE.get(corpus["model"], ("black", corpus["model"]))
        efs = sorted(int(ef) for ef in corpus.get("hnsw", {}))
        efs_seen.update(efs)
        for key, style, alpha in (("recall_at_10", "-", 1.0), ("recall_at_10_all", ":", 0.5)):
            points = [(ef, dig(corpus, "hnsw", str(ef), key)) for ef in efs]
            points = [(x, y) for x, y in points if y is not None]
            if points:
                axis.plot(
                    *zip(*points, strict=True),
                    marker=markers.get(corpus["sections"], "o"),
                    color=color,
                    linestyle=style,
                    alpha=alpha,
                    label=f"{corpus['sections']:,} sections, {name}" if key == "recall_at_10" else None,
                )
    axis.axhline(0.98, color="grey", linestyle="--", linewidth=0.8)
    if default_ef:
        axis.axvline(default_ef, color="grey", linestyle=":", linewidth=0.8)
    axis.set_xlabel("hnsw.ef_search (dotted vertical: the app's default)")
    axis.set_ylabel("recall@10 against the exact scan")
    axis.set_title("HNSW recall by corpus model\n(solid: 50 cross-film questions, dotted: all queries)", fontsize=10)
    if efs_seen:
        axis.set_xscale("log")
        axis.set_xticks(sorted(efs_seen), [str(ef) for ef in sorted(efs_seen)], fontsize=7)
        axis.minorticks_off()
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=6, loc="lower right")


def plot_streams(axis: Any, streams: dict[str, Any]) -> None:
    levels = [*([streams["unloaded"]] if streams.get("unloaded") else []), *streams.get("levels", [])]
    counts = [level["concurrency"] for level in levels]
    series = [
        ("first SSE byte", "tab:blue", "o", "ttfb_ms"),
        ("request → upstream (server)", "tab:green", "s", "upstream_ms"),
        ("added gap between tokens", "tab:red", "^", "added_gap_ms"),
        ("added gap once all open", "tab:purple", "v", "added_gap_all_open_ms"),
        ("client loop lag", "tab:gray", "x", "client_loop_lag_ms"),
    ]
    for label, color, marker, key in series:
        _p50_and_p99(axis, counts, levels, (key,), label=label, color=color, marker=marker, label_p99=True)
    axis.axhline(100, color="grey", linestyle="--", linewidth=0.8)
    axis.axhline(20, color="grey", linestyle="--", linewidth=0.8)
    axis.set_xscale("log")
    # Linear below 1 ms: the added gap is about zero (and can be slightly negative) when nothing queues.
    axis.set_yscale("symlog", linthresh=1)
    axis.set_ylim(bottom=-1)
    if counts:
        axis.set_xticks(
            counts,
            [
                (f"{level['concurrency']:,}" if level["concurrency"] > 1 else "1 at a time")
                + f"\n{level.get('errors', '?')}\nerrors"
                for level in levels
            ],
            fontsize=7,
        )
        axis.minorticks_off()
    axis.set_xlabel("concurrent chat streams")
    axis.set_ylabel("milliseconds (targets: 20 ms first byte, 100 ms gap p99)")
    axis.set_title(
        f"Streams: {streams.get('workers', '?')} workers, {streams.get('tokens', '?')} tokens at "
        f"{streams.get('tokens_per_second', 0):g}/s",
        fontsize=10,
    )
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=6, loc="upper left")


def _p50_and_p99(
    axis: Any,
    xs: list[Any],
    items: list[dict[str, Any]],
    keys: tuple[str, ...],
    *,
    label: str,
    color: str,
    marker: str,
    label_p99: bool,
) -> None:
    """A solid p50 line and a dotted p99 line of the value at `keys` of each item, skipping missing points."""
    for stat, style, alpha in (("p50", "-", 1.0), ("p99", ":", 0.6)):
        points = [(x, dig(item, *keys, stat)) for x, item in zip(xs, items, strict=True)]
        points = [(x, y) for x, y in points if y is not None]
        if points:
            axis.plot(
                *zip(*points, strict=True),
                marker=marker,
                color=color,
                linestyle=style,
                alpha=alpha,
                label=f"{label} {stat}" if stat == "p50" or label_p99 else None,
            )


def plot(path: Path) -> None:
    """latency.png beside `path` (a results.json)."""
    results = json.loads(path.read_text())
    panels = [name for name in ("retrieval", "retrieval_recall", "streams") if results.get(name.split("_")[0])]
    if not panels:
        print(f"Nothing to plot in {path}", file=sys.stderr)
        return
    figure, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 6), squeeze=False)
    for axis, name in zip(axes[0], panels, strict=True):
        if name == "retrieval":
            plot_retrieval(axis, results["retrieval"])
        elif name == "retrieval_recall":
            plot_recall(axis, results["retrieval"])
        else:
            plot_streams(axis, results["streams"])
    info = results.get("machine") or {}
    figure.suptitle(
        f"flickora benchmarks, {info.get('date', '?')}: {info.get('nproc', '?')} × {info.get('cpu', '?')}, "
        f"{info.get('ram_gb', '?')} GB RAM ({results.get('command', '')})",
        fontsize=10,
    )
    figure.tight_layout()
    output = path.with_name("latency.png")
    figure.savefig(output, dpi=110)
    print(f"Wrote {output}", file=sys.stderr)
