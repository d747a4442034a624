"""How good the answers are, measured on a question set (`eval/questions.jsonl`) through the real retrieval and the
offline answerer.

Each question names its film (import key) and 1 to 3 facts, substrings of that film's text. All-films chat: the
first source's film is right (recall@1), the right film is among the sources' first five (recall@5), its reciprocal
rank in the whole film ranking (MRR). Film pages (who, when, where, from what, which awards): the offline answer
holds one of the facts; kind "none" asks what the report does not say, and the answer must say so. Every stage is
timed. The set is split ("tune" and "test"): constants are chosen on "tune", both are reported.
"""

from __future__ import annotations

import json
import re
import statistics
import time
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chat.offline import NO_ANSWER, offline_answer
from reports.embeddings import embed_query
from reports.models import Movie
from reports.search import FUSION, Candidate, Fusion, SearchResult, candidates, rank_films, search_all, search_movie

DEFAULT_SET = Path(__file__).resolve().parent.parent / "eval" / "questions.jsonl"
# Kinds asked on a film page, for a fact the report holds.
FACT_KINDS = frozenset({"who", "when_where_source", "awards", "casual"})
# Asked on a film page, about something its report does not hold.
NONE_KIND = "none"
KINDS = FACT_KINDS | {"plot", "pair", NONE_KIND}
SPLITS = ("tune", "test")


class QuestionSetError(ValueError):
    """The question set cannot be read; the message names the line."""


@dataclass(frozen=True)
class Question:
    id: int
    split: str
    kind: str
    film: str  # the film's import key (Movie.source_key)
    question: str
    facts: tuple[str, ...]


@dataclass
class Outcome:
    question: Question
    film_id: int = 0  # the right film's primary key
    film_rank: int | None = None  # 1-based rank of the right film among the all-films ranking; None: not found
    source_films: list[int] = field(default_factory=list)  # the sources' films, in order, distinct
    answer: str | None = None  # film page: the offline answer
    answered: bool | None = None  # film page: the answer holds a fact (or, for "none", says there is none)
    timings: dict[str, float] = field(default_factory=dict)


def load_questions(path: Path = DEFAULT_SET) -> list[Question]:
    questions = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            question = Question(
                id=int(raw["id"]),
                split=str(raw["split"]),
                kind=str(raw["kind"]),
                film=str(raw["film"]),
                question=str(raw["question"]),
                facts=tuple(str(fact) for fact in raw["facts"]),
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise QuestionSetError(f"{path}, line {number}: {error}") from None
        if question.split not in SPLITS or question.kind not in KINDS:
            raise QuestionSetError(f"{path}, line {number}: unknown split or kind ({question.split}, {question.kind})")
        if not question.facts and question.kind != NONE_KIND:
            raise QuestionSetError(f"{path}, line {number}: no facts")
        questions.append(question)
    return questions


def contains_fact(answer: str, facts: Iterable[str]) -> bool:
    """Whether the answer holds one of the facts, ignoring case, accents, spacing and Markdown escapes."""
    text = _normal(answer.replace("\\", ""))
    return any(_normal(fact) in text for fact in facts)


def evaluate(
    questions: Sequence[Question],
    *,
    fusion: Fusion = FUSION,
    progress: Callable[[Sequence[Question]], Iterable[Question]] = iter,
) -> list[Outcome]:
    films = dict(Movie.objects.filter(source_key__in={q.film for q in questions}).values_list("source_key", "pk"))
    missing = sorted({q.film for q in questions} - set(films))
    if missing:
        raise QuestionSetError(f"films not imported: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    outcomes = []
    for question in progress(questions):
        movie_id = films[question.film]
        outcome = Outcome(question, film_id=movie_id)
        started = time.perf_counter()
        vector = embed_query(question.question)
        outcome.timings["embed"] = _ms(started)
        if question.kind != NONE_KIND:
            started = time.perf_counter()
            result = search_all(query=question.question, vector=vector, fusion=fusion)
            outcome.timings["all_films_search"] = _ms(started)
            outcome.source_films = _distinct(hit.movie_id for hit in result.hits)
            outcome.film_rank = _film_rank(result, movie_id)
        if question.kind in FACT_KINDS or question.kind == NONE_KIND:
            started = time.perf_counter()
            hits = search_movie(movie_id=movie_id, query=question.question, vector=vector, fusion=fusion).hits
            outcome.timings["film_search"] = _ms(started)
            started = time.perf_counter()
            outcome.answer = "".join(offline_answer(question=question.question, hits=hits))
            outcome.timings["answer"] = _ms(started)
            if question.kind == NONE_KIND:
                outcome.answered = outcome.answer.startswith(NO_ANSWER)
            else:
                outcome.answered = contains_fact(outcome.answer, question.facts)
        outcomes.append(outcome)
    return outcomes


def summarise(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """The figures for these outcomes: recall@1, recall@5 and MRR over the all-films questions, fact accuracy over
    the film-page ones, the no-answer accuracy, and p50/p95 of each stage in milliseconds."""
    ranked = [o for o in outcomes if o.question.kind != NONE_KIND]
    facts = [o for o in outcomes if o.question.kind in FACT_KINDS]
    nones = [o for o in outcomes if o.question.kind == NONE_KIND]
    summary: dict[str, Any] = {
        "questions": len(outcomes),
        "films": len({o.question.film for o in outcomes}),
        "all_films": {
            "questions": len(ranked),
            "recall_at_1": _share(o.source_films[:1] == [o.film_id] for o in ranked) if ranked else None,
            "recall_at_5": _share(o.film_id in o.source_films[:5] for o in ranked) if ranked else None,
            "mrr": round(statistics.fmean(1 / o.film_rank if o.film_rank else 0.0 for o in ranked), 3)
            if ranked
            else None,
        },
        "film_pages": {
            "questions": len(facts),
            "fact_accuracy": _share(o.answered for o in facts) if facts else None,
            "no_answer_questions": len(nones),
            "no_answer_accuracy": _share(o.answered for o in nones) if nones else None,
        },
        "latency_ms": {},
    }
    stages = sorted({stage for o in outcomes for stage in o.timings})
    for stage in stages:
        values = sorted(o.timings[stage] for o in outcomes if stage in o.timings)
        summary["latency_ms"][stage] = {
            "p50": round(_quantile(values, 0.5), 2),
            "p95": round(_quantile(values, 0.95), 2),
        }
    by_kind: dict[str, dict[str, Any]] = {}
    for kind in sorted({o.question.kind for o in ranked}):
        of_kind = [o for o in ranked if o.question.kind == kind]
        by_kind[kind] = {
            "questions": len(of_kind),
            "recall_at_1": _share(o.source_films[:1] == [o.film_id] for o in of_kind),
        }
    summary["all_films"]["by_kind"] = by_kind
    return summary


def report(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """Figures per split and for the whole set."""
    figures = {split: summarise([o for o in outcomes if o.question.split == split]) for split in SPLITS}
    figures["all"] = summarise(outcomes)
    return figures


def table(figures: dict[str, Any]) -> str:
    columns = [name for name in (*SPLITS, "all") if figures.get(name, {}).get("questions")]
    rows: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
        ("questions (films)", lambda f: f"{f['questions']} ({f['films']})"),
        ("all films: recall@1", lambda f: f["all_films"]["recall_at_1"]),
        ("all films: recall@5", lambda f: f["all_films"]["recall_at_5"]),
        ("all films: MRR", lambda f: f["all_films"]["mrr"]),
        ("film pages: fact accuracy", lambda f: f["film_pages"]["fact_accuracy"]),
        ("film pages: says there is no answer", lambda f: f["film_pages"]["no_answer_accuracy"]),
    ]
    for kind in sorted({k for name in columns for k in figures[name]["all_films"]["by_kind"]}):
        rows.append((f"recall@1, {kind}", lambda f, k=kind: f["all_films"]["by_kind"].get(k, {}).get("recall_at_1")))
    for stage in sorted({s for name in columns for s in figures[name]["latency_ms"]}):
        rows.append(
            (
                f"{stage} p50 / p95 ms",
                lambda f, s=stage: (
                    f"{f['latency_ms'][s]['p50']} / {f['latency_ms'][s]['p95']}" if s in f["latency_ms"] else None
                ),
            )
        )
    width = max(len(label) for label, _ in rows)
    lines = [f"{'':{width}}  " + "  ".join(f"{name:>13}" for name in columns)]
    for label, value in rows:
        cells = ["—" if (v := value(figures[name])) is None else str(v) for name in columns]
        lines.append(f"{label:{width}}  " + "  ".join(f"{cell:>13}" for cell in cells))
    return "\n".join(lines)


def misses(outcomes: Sequence[Outcome], films: dict[int, str]) -> list[str]:
    """One line per question answered wrongly, for reading what went wrong."""
    lines = []
    for o in outcomes:
        if o.question.kind != NONE_KIND and o.source_films[:1] != [o.film_id]:
            found = films.get(o.source_films[0], "nothing") if o.source_films else "nothing"
            lines.append(
                f"[{o.question.split} {o.question.kind} #{o.question.id}] film rank {o.film_rank}, first "
                f"{found!r}: {o.question.question}"
            )
        if o.answered is False:
            lines.append(
                f"[{o.question.split} {o.question.kind} #{o.question.id}] answer misses {o.question.facts}: "
                f"{o.question.question}"
            )
    return lines


# The fusions `tune` tries: each weight relative to the vector's (1); a weighted sum of scaled scores (rrf_k 0) or
# weighted reciprocal rank fusion with several k.
LEXICAL_WEIGHTS = (0.0, 0.25, 0.5, 0.6, 0.75, 0.9, 1.0, 1.25, 1.5, 2.0, 3.0)
RRF_KS = (0, 1, 5, 10, 20, 60)


@dataclass(frozen=True)
class Trial:
    fusion: Fusion
    recall_at_1: float
    recall_at_5: float
    mrr: float


def tune(
    questions: Sequence[Question], progress: Callable[[Sequence[Question]], Iterable[Question]] = iter
) -> list[Trial]:
    """Every fusion of GRID on the all-films questions given (the tuning half), best first by recall@1 then MRR.
    Retrieval runs once per question; only the fusion is redone per trial."""
    films = dict(Movie.objects.filter(source_key__in={q.film for q in questions}).values_list("source_key", "pk"))
    asked = [q for q in questions if q.kind != NONE_KIND]
    gathered: list[tuple[int, list[Candidate]]] = [
        (films[q.film], candidates(query=q.question, vector=embed_query(q.question))) for q in progress(asked)
    ]
    trials = []
    for rrf_k in RRF_KS:
        for lexical in LEXICAL_WEIGHTS:
            fusion = Fusion(vector=1.0, lexical=lexical, rrf_k=rrf_k)
            ranks = []
            for movie_id, rows in gathered:
                order = [film.movie_id for film in rank_films(rows, fusion)]
                ranks.append(order.index(movie_id) + 1 if movie_id in order else None)
            trials.append(
                Trial(
                    fusion,
                    recall_at_1=_share(rank == 1 for rank in ranks),
                    recall_at_5=_share(rank is not None and rank <= 5 for rank in ranks),
                    mrr=round(statistics.fmean(1 / rank if rank else 0.0 for rank in ranks), 3),
                )
            )
    trials.sort(key=lambda trial: (-trial.recall_at_1, -trial.mrr, -trial.recall_at_5))
    return trials


def _film_rank(result: SearchResult, movie_id: int) -> int | None:
    order = [film.movie_id for film in result.films] or _distinct(hit.movie_id for hit in result.hits)
    return order.index(movie_id) + 1 if movie_id in order else None


def _distinct(ids: Iterable[int]) -> list[int]:
    return list(dict.fromkeys(ids))


def _share(flags: Iterable[bool | None]) -> float:
    values = [bool(flag) for flag in flags]
    return round(sum(values) / len(values), 3) if values else 0.0


def _quantile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    index = min(len(values) - 1, max(0, round(q * (len(values) - 1))))
    return values[index]


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _normal(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    text = "".join(char for char in text if not unicodedata.combining(char))
    return re.sub(r"\s+", " ", text).strip().casefold()
