"""Report sections written by an LLM from a film's source text, and nothing else.

For each requested kind (plot, themes, reception, ...) the model gets the film's source text and is told to use only
the facts it states, or to answer `INSUFFICIENT` when the text cannot support that kind. Whatever it writes then has
to pass `unsupported_facts`, a guard no prompt can talk around: every number and every capitalised name in the
section must occur in the source text (details in its docstring). A section that fails is not stored.

Storage. Generated sections are ordinary `MovieSection` rows of their kind (origin `generated`), after the overview
sections (which stay the source text's own, written by ingest) in the canonical kind order (`MovieSection.Kind`; of
a kind, after the section written from the film's facts, `reports.facts`), heading = the kind's label (`"Plot"`,
`"Plot, part 2"` when a long answer is split like the overview is), content hash as ingest computes it, so
`embed_sections()` embeds them like any other section.

Idempotency and source changes. The rule: *a generated section exists only while the source text it was written from
is the film's current source text.* Ingest keeps that true: when a film's source text changes, its generated sections
are deleted together with the old overview; when anything else changes they are kept and renumbered after the new
overview (`place_generated_sections`). So generation needs no marker of its own: a kind that already has a generated
section is skipped without asking the model, unless `force` is given, which asks again and replaces it (or removes
it when the answer is now INSUFFICIENT). A forced answer that is rejected or fails leaves the earlier section in
place.
"""

from __future__ import annotations

import asyncio
import logging
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Max
from django.db.models.functions import Coalesce

from llm import LLMConfig, LLMError, aclose_shared_client, complete_chat
from reports import ingest
from reports.embeddings import MAX_TOKENS, get_embedder
from reports.models import Movie, MovieSection
from reports.splitting import split_into_chunks

logger = logging.getLogger(__name__)

Kind = MovieSection.Kind

# Every kind the model can write, in the order a report shows them.
GENERATED_KINDS: tuple[str, ...] = tuple(kind for kind in Kind.values if kind != Kind.OVERVIEW)
_ORDER = {kind: index for index, kind in enumerate(Kind.values)}

INSUFFICIENT = "INSUFFICIENT"

# What each section covers, so the model knows what "enough" means for it.
KIND_SCOPES: dict[str, str] = {
    Kind.PLOT: "the story the film tells: its setting, main events and, if the text gives it, its ending",
    Kind.PRODUCTION: "how the film was made: its origins, writing, adaptation, casting, filming and release",
    Kind.CAST_CREW: "who made the film and who is in it, with their roles",
    Kind.CHARACTERS: "the main characters, who they are and how they relate to each other",
    Kind.THEMES: "the subjects and ideas the film deals with, as the text states or plainly shows them",
    Kind.VISUAL_TECHNICAL: "the film's look and craft: cinematography, editing, sound, music, effects, format",
    Kind.RECEPTION: "how critics and audiences received the film, and any honours the text mentions",
    Kind.LEGACY: "the film's later standing and influence: restorations, rankings, preservation, later works",
}

INSTRUCTIONS = f"""You write one section of a film report for a film reference site, from the film's source text.

Use ONLY facts stated in the source text. Do not invent or add anything it does not state: no budgets, no box-office \
grosses, no awards or nominations, no dates or years, no names of people, characters, places or companies, no \
quotations, no numbers that are not in the text. Do not use anything you know about the film from elsewhere, even \
if you are sure of it.

If the source text does not say enough to write this section, answer with exactly {INSUFFICIENT} and nothing else.

Otherwise write plain prose in English, one or two paragraphs, at most 150 words: no heading, no lists, no \
markdown, no preamble, and do not mention the source text."""

# The model's answer is capped well above the 150 words asked for; a longer one is split, never cut.
MAX_ANSWER_TOKENS = 600


@dataclass
class GenerationResult:
    """What happened to each requested kind of one film (kinds in canonical order)."""

    written: list[str] = field(default_factory=list)  # stored, new or replacing an earlier section
    unchanged: list[str] = field(default_factory=list)  # already there and not forced: the model was not asked
    insufficient: list[str] = field(default_factory=list)  # the model answered INSUFFICIENT (or nothing)
    removed: list[str] = field(default_factory=list)  # insufficient kinds whose earlier section was deleted
    rejected: dict[str, list[str]] = field(default_factory=dict)  # kind → the unsupported facts found in it
    failed: list[str] = field(default_factory=list)  # not done because a request failed (that kind and the rest)
    error: LLMError | None = None
    embedded: int = 0


def canonical_kinds(kinds: Iterable[str]) -> list[str]:
    """The generated kinds among `kinds`, without duplicates, in report order. Overview is left out (it is the
    source text's own); an unknown kind is a ValueError."""
    unknown = sorted(set(kinds) - set(Kind.values))
    if unknown:
        raise ValueError(f"unknown section kind(s): {', '.join(unknown)}")
    return sorted(set(kinds) - {Kind.OVERVIEW}, key=_ORDER.__getitem__)


def generate_report(*, movie: Movie, kinds: Sequence[str], config: LLMConfig, force: bool = False) -> GenerationResult:
    """Ask the model for each of `kinds` that `movie` lacks (all of them with `force`), store what passes the guard,
    and embed it. The requests go one at a time; the first failed request ends the film's run, keeping what was
    written before it (a re-run asks only for what is still missing). Synchronous: it runs its requests in an event
    loop of its own, so call it from a command or a worker, never from async code."""
    wanted = canonical_kinds(kinds)
    result = GenerationResult()
    generated = MovieSection.objects.filter(movie=movie, kind__in=wanted, origin=MovieSection.Origin.GENERATED)
    existing = set(generated.values_list("kind", flat=True))
    if not force:
        result.unchanged = [kind for kind in wanted if kind in existing]
        wanted = [kind for kind in wanted if kind not in existing]
    if not wanted:
        return result

    requests = [(kind, build_messages(movie=movie, kind=kind)) for kind in wanted]
    answers, result.error = asyncio.run(_ask(requests, config=config))
    result.failed = wanted[len(answers) :]

    allowed = [movie.title, str(movie.year or ""), *Kind.labels]
    drafts: dict[str, list[str]] = {}
    for kind, answer in answers.items():
        text = _clean(answer, label=Kind(kind).label)
        if not text or _is_insufficient(text):
            result.insufficient.append(kind)
            if kind in existing:
                result.removed.append(kind)
            continue
        unsupported = unsupported_facts(text, source=movie.source_text, allowed=allowed)
        if unsupported:
            result.rejected[kind] = unsupported
            logger.warning("Rejected a generated section film=%s kind=%s unsupported=%s", movie.slug, kind, unsupported)
            continue
        drafts[kind] = _split(text, title=movie.title, label=Kind(kind).label)
    result.written = list(drafts)

    if drafts or result.removed:
        _store(movie, drafts, remove=result.removed)
    if drafts:
        # Embeds whatever needs it, which after an import-and-embed is just these sections.
        result.embedded = ingest.embed_sections()
    logger.info(
        "Generated report film=%s model=%s written=%s insufficient=%s rejected=%s failed=%s error=%s",
        movie.slug,
        config.model,
        result.written,
        result.insufficient,
        list(result.rejected),
        result.failed,
        result.error.code if result.error else None,
    )
    return result


def build_messages(*, movie: Movie, kind: str) -> list[dict[str, str]]:
    label = Kind(kind).label
    film = f"{movie.title} ({movie.year})" if movie.year else movie.title
    request = (
        f"Film: {film}\n"
        f"Section: {label} — {KIND_SCOPES[kind]}\n\n"
        f'Source text:\n"""\n{movie.source_text}\n"""\n\n'
        f"Write the {label} section from the source text alone, or answer {INSUFFICIENT}."
    )
    return [{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": request}]


async def _ask(
    requests: Sequence[tuple[str, list[dict[str, str]]]], *, config: LLMConfig
) -> tuple[dict[str, str], LLMError | None]:
    answers: dict[str, str] = {}
    try:
        for kind, messages in requests:
            try:
                answers[kind] = await complete_chat(
                    config=config, messages=messages, temperature=0.2, max_tokens=MAX_ANSWER_TOKENS
                )
            except LLMError as error:
                return answers, error
    finally:
        # Each film runs in its own short-lived event loop; its pooled client must not outlive it.
        await aclose_shared_client()
    return answers, None


def _clean(answer: str, *, label: str) -> str:
    text = answer.strip()
    first, _, rest = text.partition("\n")
    # Models sometimes open with the heading they were told not to write.
    if first.strip(" #*_:").casefold() == label.casefold():
        text = rest.strip()
    return text


def _is_insufficient(text: str) -> bool:
    return text.lstrip("*_`\"' ").startswith(INSUFFICIENT) or bool(
        re.fullmatch(rf"[\W_]*{INSUFFICIENT}[\W_]*", text, re.IGNORECASE)
    )


def _split(text: str, *, title: str, label: str) -> list[str]:
    """The answer in pieces the embedder reads whole (almost always one), as ingest splits the overview."""
    count_tokens = get_embedder().count_tokens
    budget = MAX_TOKENS - (count_tokens(f"{title}. {label}, part 99.") - 2) - 2
    return split_into_chunks(text, budget=budget, count_tokens=count_tokens)


def _heading(label: str, number: int) -> str:
    return label if number == 1 else f"{label}, part {number}"


def _store(movie: Movie, drafts: dict[str, list[str]], *, remove: Sequence[str]) -> None:
    with transaction.atomic():
        # Two runs on the same film at once would race for the same positions.
        Movie.objects.select_for_update().filter(pk=movie.pk).first()
        MovieSection.objects.filter(
            movie=movie, kind__in=[*drafts, *remove], origin=MovieSection.Origin.GENERATED
        ).delete()
        free = MovieSection.objects.filter(movie=movie).aggregate(last=Coalesce(Max("position"), -1))["last"] + 1
        sections: list[MovieSection] = []
        for kind, parts in drafts.items():
            label = Kind(kind).label
            for number, content in enumerate(parts, start=1):
                heading = _heading(label, number)
                sections.append(
                    MovieSection(
                        movie=movie,
                        kind=kind,
                        origin=MovieSection.Origin.GENERATED,
                        position=free + len(sections),
                        heading=heading,
                        content=content,
                        content_hash=ingest.section_hash(movie.title, heading, content),
                    )
                )
        MovieSection.objects.bulk_create(sections)
        ingest.place_generated_sections(movie)


# The guard.

_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")
_AMOUNT = re.compile(
    r"(?P<currency>[$£€¥₹])?\s?(?P<number>\d+(?:[.,]\d+)*)"
    r"(?:\s?(?P<unit>%|percent\b|per cent\b|million\b|billion\b|thousand\b))?",
    re.IGNORECASE,
)
# Words that state money or honours even without a digit or a capital ("grossed three million", "an award").
FACT_WORDS = frozenset(
    {"million", "billion", "percent", "budget", "grossed", "award", "awards", "awarded", "nominated", "nomination"}
)
# What may open a sentence without occurring in the source text: a capital there is grammar, not a name.
SENTENCE_OPENERS = frozenset(
    """a about after again against all along although among an and another as at because before being both but by
    despite during each eventually even finally first following for from having he her here his however i if in
    instead into it its later like many meanwhile more most much now once one only or other over overall set several
    she since so some still such that the their then there these they this those though through throughout thus to
    together told under unlike until upon we what when where which while who whose with within without yet""".split()
)
# Characters that may stand between a sentence's end and its first word.
_OPENING_MARKS = " \t\"'“‘«([*_#>-•"


def _normalize(word: str) -> str:
    word = unicodedata.normalize("NFKD", word.replace("’", "'"))
    word = "".join(char for char in word if not unicodedata.combining(char)).casefold()
    return word.removesuffix("'s")


def _amounts(text: str) -> Iterable[tuple[re.Match[str], str, str]]:
    """(the match, the number alone, the number with its currency and unit) for each number in `text`."""
    for match in _AMOUNT.finditer(text):
        number = match["number"].replace(",", "")
        unit = (match["unit"] or "").lower()
        unit = "%" if unit in ("%", "percent", "per cent") else f" {unit}" if unit else ""
        yield match, number, f"{match['currency'] or ''}{number}{unit}"


def _starts_sentence(text: str, index: int) -> bool:
    before = text[:index].rstrip(_OPENING_MARKS)
    return not before or before[-1] in ".!?:;\n"


def unsupported_facts(text: str, *, source: str, allowed: Iterable[str] = ()) -> list[str]:
    """The facts in `text` that `source` (or `allowed`: the title, the year, the headings) does not contain, in order.

    Deliberately simple, and strict rather than clever:
    - Numbers: each number must occur in the source (`1,000` = `1000`); one with a currency or a unit (`$3 million`,
      `40%`, `40 percent`) must occur there with the same currency and unit.
    - Names: each capitalised word must occur in the source, compared case-, accent- and possessive-blind
      (`Ozu's` matches `Ōzu`). At the start of a sentence a capitalised word is also allowed when it is a common
      opener (`SENTENCE_OPENERS`: The, After, However, ...), since its capital says nothing there.
    - `FACT_WORDS` (million, budget, award, nominated, ...) must occur in the source in any case.
    Spelled-out numbers other than those are not checked, and a name from the source put in the wrong place passes:
    the guard stops invented facts, not wrong sentences; the prompt and the low temperature do the rest.
    """
    reference = " ".join([source, *allowed])
    vocabulary = {_normalize(word) for word in _WORD.findall(reference)}
    numbers: set[str] = set()
    for _, number, amount in _amounts(reference):
        numbers.update((number, amount))
    found: dict[str, int] = {}  # each unsupported fact → where it first occurs
    units: set[int] = set()  # where the unit words of amounts start: the amount is checked as a whole
    for match, _, amount in _amounts(text):
        if amount not in numbers:
            found.setdefault(amount, match.start("number"))
        if match["unit"]:
            units.add(match.start("unit"))
    for match in _WORD.finditer(text):
        word = match.group()
        normalized = _normalize(word)
        if normalized in vocabulary or match.start() in units:
            continue
        opener = _starts_sentence(text, match.start()) and normalized in SENTENCE_OPENERS
        if normalized in FACT_WORDS or (word[0].isupper() and not opener):
            found.setdefault(word, match.start())
    return sorted(found, key=found.__getitem__)
