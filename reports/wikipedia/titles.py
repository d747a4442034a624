"""Titles: the title a key stands for, and whether a definition names it."""

from __future__ import annotations

import re

from .definition import Definition
from .text import ARTICLES, INVISIBLE, NUMBER_WORDS, fold, rule_pattern, rule_words

_DISAMBIGUATOR = re.compile(
    rf"\s*\((?:[^()]*\b(?:{rule_pattern('titles', 'disambiguators')})\b[^()]*)\)\s*$", re.IGNORECASE
)
_BANNERS = re.compile(rf"^(?:{rule_pattern('titles', 'banner_patterns')})(?=[A-Z\d\s(]|$)\s*")


def clean_title(key: str) -> str | None:
    """The film title a key stands for, or None when the key is not a title at all.

    A banner glued before a title ("NOW SHOWINGDay of Wrath") is stripped; the text stored under such
    a key is still checked like any other, which is where those entries usually fail.
    """
    title = re.sub(r"\s+", " ", key.translate(INVISIBLE)).strip()
    title = _BANNERS.sub("", title).strip()
    title = _DISAMBIGUATOR.sub("", title).strip()
    if not title or not re.search(r"[^\W_]", title):
        return None
    return title


def title_tokens(title: str) -> list[str]:
    tokens = fold(title)
    # Wikipedia drops or adds the leading article freely ("Chelsea Girls" for "The Chelsea Girls").
    if len(tokens) > 1 and tokens[0] in ARTICLES:
        tokens = tokens[1:]
    return tokens


def primary_name(subject: str) -> str:
    name = re.split(r"\s[(\[]|,\s|\s\(|\(", subject, maxsplit=1)[0].strip(' "“”')
    return name[:80] or subject[:80]


_ROMAN = re.compile(r"(?=[ivx])x{0,3}(?:ix|iv|v?i{0,3})")
# What follows a title in a sequel's name: "The Godfather Part II", "Toy Story 2", "Alien 3".
_SEQUEL = re.compile(rf"(?:{rule_pattern('titles', 'sequel_patterns')})")


def _is_number(token: str) -> bool:
    return token.isdecimal() or token in NUMBER_WORDS.values() or bool(_ROMAN.fullmatch(token))


def _contains_title(haystack: list[str], title: list[str]) -> bool:
    """Whether ``title`` occurs in ``haystack`` and is not just the start of a sequel's name."""
    width = len(title)
    for start in range(len(haystack) - width + 1):
        if haystack[start : start + width] == title:
            following = haystack[start + width] if start + width < len(haystack) else ""
            if not (following and _SEQUEL.fullmatch(following) or _is_number(following)):
                return True
    return False


_OTHER_WORKS = rule_words("titles", "other_works")
_AS_CUES = rule_words("titles", "as_cues")


def _alias_cue(before: list[str]) -> bool:
    """Whether the words before a mention introduce another title of the subject."""
    if _OTHER_WORKS & set(before):
        # "a sequel titled X", "based on the novel titled X": the title of some other work.
        return False
    return "title" in before or (len(before) >= 2 and before[-1] == "as" and before[-2] in _AS_CUES)


def names_title(title: str, definition: Definition) -> bool:
    """Whether the definition names ``title`` as its subject (or gives it as the subject's other title)."""
    wanted = title_tokens(title)
    if not wanted:
        return False
    subject = fold(definition.subject)
    if _contains_title(subject, wanted):
        return True
    # Spacing and punctuation variants: "Chain Saw" / "Chainsaw", "W.R." / "WR".
    compact = "".join(wanted)
    joined = "".join(subject)
    if len(compact) >= 6 and compact in joined and not _SEQUEL.match(joined.split(compact, 1)[1]):
        return True
    # Reworded translations: "In a Year of 13 Moons" for "In a Year with 13 Moons". Numbers must all
    # be there, or "Part II" would pass for "Part I".
    if len(wanted) >= 3 and all(token in subject for token in wanted if _is_number(token)):
        present = sum(token in subject for token in wanted)
        if present >= 3 and present / len(wanted) >= 0.8 and wanted[0] in subject:
            return True
    # An alias later on: "It was released as A Day in the Country", "The North American title of the
    # film is The Lovers on the Bridge".
    tokens = fold(definition.text)
    width = len(wanted)
    for start in range(len(tokens) - width + 1):
        if tokens[start : start + width] == wanted:
            before = tokens[max(0, start - 6) : start]
            if before and before[-1] in ARTICLES:
                before = before[:-1]
            if _alias_cue(before):
                return True
    return False
