"""The answer when no language model is configured: the sentences of the retrieved sections that best answer the
question, quoted word for word with their citations.

A sentence scores by the question's terms it contains (each weighted by how rare it is among the candidate
sentences, so the film's own title, present everywhere, counts for little), plus a little for the rank and
similarity of its section and for a hint matching the question word (a name for "who", a year for "when").
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chat.citations import remove_citation_markers
from chat.text import STOPWORDS, words
from reports.splitting import split_sentences

if TYPE_CHECKING:
    from reports.search import Hit


# Words whose crude stem would be another's: "action" (a genre, in every action film's facts) is not "actor".
_STEMS = {"action": "action", "actions": "action"}


def stem(word: str) -> str:
    """A crude English stem, the same for a word's common forms: directed, directing, director -> direct."""
    word = re.sub(r"['’]s$", "", word.lower())
    if word in _STEMS:
        return _STEMS[word]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ing", "ion", "ed", "er", "or"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            # starring -> starr -> star
            if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "lsz":
                word = word[:-1]
            break
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    return word


INTRO = "No language model is configured, so here are the passages from the film reports that best match your question:"
NO_MATCH = "Nothing in the film reports matches this question. Try naming the film, or asking about its story, cast, \
production or reception."
NO_ANSWER = "The film reports found for this question do not say."
NO_ANSWER_HINT = " They tell of the film's story, cast and crew, production and reception."

MIN_SENTENCES, MAX_SENTENCES = 2, 4
# Past the first MIN_SENTENCES, a sentence is quoted only if it scores at least this share of the best one.
KEEP_RATIO = 0.5
# Shorter sentences are headings or fragments ("Plot."), quoted only when nothing else is left.
MIN_WORDS = 4

# Term overlap (0 to 1) decides; these only break near-ties.
_RANK_WEIGHT = 0.1  # the first section gets 0.1, the second 0.05, ...
_SIMILARITY_WEIGHT = 0.1
_LEAD_WEIGHT = 0.03  # a section's first sentence tends to say what the section is about
_HINT_WEIGHT = 0.15  # only for a sentence with evidence (a question term or a concept's cue): any name is no answer
_CONCEPT_WEIGHT = 0.5  # a sentence speaking of what the question asks about ("music": a composer, a score)
_TITLE_SHARE = 0.2  # a word of the film's title, when the question asks something more
_HEADING_SHARE = 0.5  # a question term in the section's heading ("plot") counts half as much as in the sentence


_NAME = re.compile(r"\b[A-Z][\w'’.-]+ (?:[A-Z]\. )*[A-Z][\w'’-]+")
_YEAR_OR_MONTH = re.compile(
    r"\b(?:1[89]\d\d|20\d\d|January|February|March|April|May|June|July|August|September|October|November|December)\b"
)
_PLACE = re.compile(r"\b(?:in|at|on|near|across|through|to)\s+(?:the\s+)?[A-Z][a-z]")
_AWARD = re.compile(r"\b(?:Award|Awards|Oscar|Oscars|Prize|Palme|Golden|BAFTA|Best [A-Z])", re.IGNORECASE)


@dataclass(frozen=True)
class Concept:
    """What a question can ask about, the words that ask it, and the words a sentence answering it uses."""

    name: str
    asks: frozenset[str]  # stems
    cues: frozenset[str]  # stems
    answer: re.Pattern[str]  # what the answer looks like: a name, a year, a place, an award
    phrases: tuple[str, ...] = ()  # cues of several words, matched in the lower-cased sentence ("takes place")


def _concept(name: str, asks: str, cues: str, answer: re.Pattern[str], phrases: tuple[str, ...] = ()) -> Concept:
    return Concept(name, frozenset(map(stem, asks.split())), frozenset(map(stem, cues.split())), answer, phrases)


# Film questions come in a few kinds, and the sentence answering one rarely repeats its words: "who did the music"
# is answered by "a theme created by composer John Williams", "which Oscars" by "won four Academy Awards".
CONCEPTS = (
    _concept(
        "music",
        "music musical score composer composed compose soundtrack song songs",
        "music musical score composer composed soundtrack song songs theme lyrics",
        _NAME,
    ),
    _concept(
        "cast",
        "actor actors actress actresses cast star stars starring starred plays played play role roles voice voices "
        "voiced lead",
        "star stars starring starred cast plays played role roles voice voices voiced actor actress",
        _NAME,
    ),
    _concept(
        "direction", "direct directed director directors filmmaker helmed made", "directed director direction", _NAME
    ),
    _concept(
        "writing",
        "wrote write writer writers written screenplay script scripted screenwriter",
        "written writer wrote screenplay script",
        _NAME,
    ),
    _concept("production", "produced producer producers studio", "produced producer production studio", _NAME),
    _concept(
        "awards",
        "award awards oscar oscars academy prize prizes win won nominated nomination nominations palme",
        "award awards oscar oscars academy prize won win nominated nomination nominations palme golden bafta",
        _AWARD,
    ),
    _concept(
        "place",
        "where location locations set filmed shot located place",
        "set shot filmed location locations",
        _PLACE,
        ("takes place", "took place", "set in"),
    ),
    _concept(
        "source",
        "based novel book adapted adaptation source",
        "based novel book adapted adaptation story play memoir",
        _NAME,
    ),
    _concept(
        "time", "when year released release premiered premiere", "released release premiered premiere", _YEAR_OR_MONTH
    ),
)

_CAST = next(concept for concept in CONCEPTS if concept.name == "cast")
# Question words that say what the answer looks like, whatever the question asks about.
_HINTS = {"who": _NAME, "whom": _NAME, "whose": _NAME, "when": _YEAR_OR_MONTH, "year": _YEAR_OR_MONTH, "where": _PLACE}
# Words that ask for nothing in particular: a question made of these and the film's title wants an overview.
_GENERAL = frozenset(map(stem, "tell know anything everything about summary summarise summarize overview".split()))


@dataclass(frozen=True)
class _Candidate:
    text: str
    hit: Hit
    hit_rank: int
    position: int
    stems: frozenset[str]
    heading_stems: frozenset[str]


def offline_answer(*, question: str, hits: Sequence[Hit]) -> Iterator[str]:
    """The answer in pieces: an intro line, then one Markdown quote per chosen sentence, each ending in its
    citation `[section_id]`. The film is named before each quote when they come from more than one film. When the
    question asks for something (a term beyond the film's title, or a kind of fact) that no sentence speaks of, the
    answer says so plainly rather than quote filler."""
    if not hits:
        yield NO_MATCH
        return
    chosen = best_sentences(question=question, hits=hits)
    if not chosen:
        yield NO_ANSWER + NO_ANSWER_HINT
        return
    yield INTRO
    several_films = len({candidate.hit.movie_id for candidate in chosen}) > 1
    for candidate in chosen:
        film = f"**{_escape(_film_label(candidate.hit))}:** " if several_films else ""
        yield f"\n\n> {film}{candidate.text} [{candidate.hit.section_id}]"


def best_sentences(*, question: str, hits: Sequence[Hit]) -> list[_Candidate]:
    """Between MIN_SENTENCES and MAX_SENTENCES sentences of `hits` (fewer if they hold fewer), best first; none
    when the question asks for something no sentence speaks of."""
    candidates = _candidates(hits)
    if not candidates:
        return []
    question_stems = set(_stems(question))
    asked_words = {w.lower() for w in words(question)}
    # Question words are stop words in the rest of the scoring, but they say what is asked ("where").
    concepts = [c for c in CONCEPTS if c.asks & (question_stems | {stem(word) for word in asked_words})]
    title_stems = frozenset().union(*(_stems(hit.movie_title) for hit in hits))
    # A title misspelt or clipped ("singing in the rain", "the shinning") is the title all the same.
    title_stems |= {term for term in question_stems if any(_same_start(term, title) for title in title_stems)}
    # What the question asks beyond naming the film: its own terms, and the kinds of fact it asks for.
    specific = question_stems - title_stems - _GENERAL
    if not specific and not concepts and asked_words & {"who", "who's"}:
        concepts = [_CAST]  # "who was in Singin' in the Rain?"
    hints = {pattern for word, pattern in _HINTS.items() if word in asked_words} | {c.answer for c in concepts}
    cues = frozenset().union(*(c.cues for c in concepts)) if concepts else frozenset()
    phrases = [phrase for c in concepts for phrase in c.phrases]

    def speaks_of(candidate: _Candidate) -> bool:
        """The sentence speaks of what the question asks about (a cue of one of its concepts)."""
        return bool(cues & candidate.stems) or any(phrase in candidate.text.lower() for phrase in phrases)

    idf = _idf(candidates, question_stems)
    if specific:
        # The film's own title is in many of its sentences and answers nothing: it only breaks ties.
        idf = {term: weight * (_TITLE_SHARE if term in title_stems else 1.0) for term, weight in idf.items()}
    # A term no sentence contains still counts in the total: the title alone must not look like a full answer to
    # "which Oscars did Network win?" (the sentence answering it says "Academy Awards": a concept's cue, below).
    total = sum(idf.values())

    def overlap(candidate: _Candidate) -> float:
        in_sentence = question_stems & candidate.stems
        in_heading = (question_stems & candidate.heading_stems) - in_sentence
        matched = sum(idf[term] for term in in_sentence) + _HEADING_SHARE * sum(idf[term] for term in in_heading)
        return matched / total if total else 0.0

    def evidence(candidate: _Candidate) -> bool:
        """The sentence (or its heading) holds a specific term of the question, or a cue of what it asks."""
        return bool(specific & (candidate.stems | candidate.heading_stems)) or speaks_of(candidate)

    def score(candidate: _Candidate) -> float:
        hit = candidate.hit
        value = overlap(candidate) + _RANK_WEIGHT / (1 + candidate.hit_rank)
        value += _SIMILARITY_WEIGHT * max(hit.similarity or 0.0, 0.0)
        value += _LEAD_WEIGHT if candidate.position == 0 else 0.0
        if speaks_of(candidate):
            value += _CONCEPT_WEIGHT
        if evidence(candidate) and any(pattern.search(candidate.text) for pattern in hints):
            value += _HINT_WEIGHT
        return value

    if (specific or concepts) and not any(evidence(candidate) for candidate in candidates):
        return []
    scored = [(score(candidate), candidate) for candidate in candidates]
    # Fragments go last whatever their score; ties go to the better section, then the earlier sentence.
    scored.sort(key=lambda pair: (len(pair[1].text.split()) < MIN_WORDS, -pair[0], pair[1].hit_rank, pair[1].position))
    best_score = scored[0][0]
    chosen: list[_Candidate] = []
    seen: set[str] = set()
    for value, candidate in scored:
        key = " ".join(candidate.text.lower().split())
        if key in seen:
            continue
        if len(chosen) >= MAX_SENTENCES:
            break
        # The first MIN_SENTENCES give context whatever they say; more must share a term with the question.
        if len(chosen) >= MIN_SENTENCES and (value < KEEP_RATIO * best_score or not overlap(candidate)):
            continue
        seen.add(key)
        chosen.append(candidate)
    return chosen


def _candidates(hits: Sequence[Hit]) -> list[_Candidate]:
    candidates = []
    for rank, hit in enumerate(hits):
        # Footnote markers in the source would read as citations of other sections.
        heading_stems = _stems(hit.heading)
        for position, sentence in enumerate(split_sentences(remove_citation_markers(hit.content))):
            candidates.append(_Candidate(sentence, hit, rank, position, _stems(sentence), heading_stems))
    return candidates


def _stems(text: str) -> frozenset[str]:
    return frozenset(stem(word) for word in words(text) if word.lower() not in STOPWORDS)


def _same_start(a: str, b: str) -> bool:
    return len(a) >= _SAME_START and len(b) >= _SAME_START and a[:_SAME_START] == b[:_SAME_START]


_SAME_START = 4


def _idf(candidates: Sequence[_Candidate], terms: set[str]) -> dict[str, float]:
    count = len(candidates)
    return {term: math.log(1 + count / (1 + sum(term in c.stems for c in candidates))) for term in terms}


def _film_label(hit: Hit) -> str:
    return f"{hit.movie_title} ({hit.movie_year})" if hit.movie_year else hit.movie_title


def _escape(text: str) -> str:
    return re.sub(r"([\\`*_\[\]<>])", r"\\\1", text)
