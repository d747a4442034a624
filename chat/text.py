"""Words of a text, for search and for the offline answerer, and the small edits prompts make to text."""

from __future__ import annotations

import re
from collections.abc import Iterable

_TRUNCATED = " […]"

# Words that carry no search value: English function words, question words and chat filler ("tell me about").
# "film" and "movie" are here because nearly every section is about one.
STOPWORDS = frozenset(
    """
    a about above after again against all also am an and any are as at be because been before being below between
    both but by can could did do does doing done down during each else even ever few for from further get got had
    has have having how i if in into is just know let like made make many me more most much my no nor not now of
    off on once one only or other our out over own please really same say should show so some such tell than that
    the then there these they this those through to too under until up us very was we were what when where which
    while who whom whose why will with would you your yours film films movie movies explain describe give
    it its itself he him his she her hers they them their theirs
    """.split()
)

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")


def words(text: str) -> list[str]:
    """The words of `text` in their original case (apostrophes kept inside words, other punctuation dropped)."""
    return _WORD.findall(text)


def content_words(text: str) -> list[str]:
    """The words of `text` that are not STOPWORDS, original case, possessive 's removed."""
    found = []
    for word in words(text):
        word = re.sub(r"['’]s$", "", word)
        if word.lower() not in STOPWORDS:
            found.append(word)
    return found


def one_line(text: str) -> str:
    return " ".join(text.split())


def truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    if limit <= len(_TRUNCATED):
        return ""
    cut = text[: limit - len(_TRUNCATED)]
    if not text[len(cut)].isspace() and " " in cut:
        cut = cut.rsplit(" ", 1)[0]  # no half word at the end
    return cut.rstrip() + _TRUNCATED


def unique_ci(items: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    unique = []
    for item in items:
        if item.lower() not in seen:
            seen.add(item.lower())
            unique.append(item)
    return unique
