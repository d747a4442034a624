"""The film's facts the definition states: its release year and its director."""

from __future__ import annotations

import re

from .definition import define
from .text import YEAR, clean_text, rule_pattern, rule_words, split_sentences


def extract_year(text: str) -> int | None:
    """The film's release year as the definition sentence states it, else None.

    Only years attached to the film itself count: "is a 1958 American film noir", "the 1968 film"
    after a novel, "Title (1945) is a documentary", "a Chinese film released in 1948". Dates of other
    things (a novel's year, "sank on 15 April 1912") are never used, and neither are later sentences.
    """
    definition = define(text)
    if definition is None or definition.kind is None:
        return None
    years = YEAR.findall(definition.film_phrase)
    if years:
        return int(years[-1])
    stated = re.search(r"\((1[89]\d\d|20[0-4]\d)\)", definition.subject)
    if stated:
        return int(stated.group(1))
    # The release sentence right after the noun phrase: "a Chinese film released in 1948",
    # "released to cinemas in Sweden on 6 October 2000", "a Japanese documentary made in 1971".
    released = re.match(
        r"[^.;]{0,60}?\b(?:released|premiered|debuted|opened)\b(?: [^\s.;()]+){0,5}? (?:in|on) (?:[\w]+ ){0,2}?"
        r"(1[89]\d\d|20[0-4]\d)\b|(?:[^\s.;()]+ ){0,2}?made in (1[89]\d\d|20[0-4]\d)\b",
        definition.after,
    )
    if released:
        return int(released.group(1) or released.group(2))
    return None


_DIRECTED_BY = re.compile(
    r"\b(?:co-)?directed(?:(?:,? and|,) (?:later |also )?(?:co-)?(?:[a-z]+ed|written|shot|made|drawn))*,? by\b"
    r"|\bdirectorial (?:debut|feature) (?:of|by)\b|\bdirected,? and starring\b",
)
# Later sentences count only when the clause before "directed by" is about the film itself ("the film
# was directed by", "Written, produced and directed by"); otherwise they may name another film's
# director ("lost to Gone with the Wind, also directed by Fleming").
_FILM_REFERENCE = re.compile(
    rf"\b(?:[Tt]he|[Tt]his|[Ii]ts) (?:\w+ )?(?:{rule_pattern('directors', 'reference_nouns')})\b|\bIt\b|"
    r"^(?:Written|Produced|Directed|Co-written|Co-directed|Adapted|Edited|Shot)\b"
)
_PASSIVE_LIST = re.compile(r"\b(?:was|is)\s+(?:\w+\s+)?(?:written|produced|co-written|adapted|shot|edited)\b")
_OTHER_FILM = re.compile(
    r"(?:remake of|sequel to|version of|based on|\b(?:of|to|from|in|on|with|after|than) the "
    r"(?:(?:1[89]|20)\d\d )?(?:[\w-]+ ){0,3}(?:film|movie))[^,;]{0,40}$"
)
_FILM_BY = re.compile(
    rf"\b(?:{rule_pattern('directors', 'work_nouns')}) by\b"
    r"|\bmade in (?:the )?(?:[A-Z][\w-]+ ){1,3}by\b|\bmade in \d{4} by\b",
)
_COMPANY_WORDS = rule_words("directors", "company_words")
_ROLE_WORD = rf"[\w/-]*(?:{rule_pattern('directors', 'role_patterns')})s?"
_ROLE = rf"{_ROLE_WORD}(?:(?: and |/){_ROLE_WORD})?"
# "Inuit filmmaker", "the Georgian-born Soviet director", "the British film making team of": words that
# describe the person before the name, always ending in a role.
_DESCRIPTOR = re.compile(
    rf"^(?:the |a |an )?(?:(?!(?:and|by|with|of|in|at|for|from|who|which)\b)[\w'’/-]+ ){{0,4}}?{_ROLE}"
    r"(?: of)? (?=[^\W\d_])|^the [A-Z][\w-]*(?:an|ese|ish|ch|i) (?=[A-Z])",
)
# "directed by the Wachowskis", "by the Coen brothers".
_COLLECTIVE = re.compile(r"^the ((?:[A-Z][\w'’-]+ )*(?:[A-Z][\w'’-]+s|[A-Z][\w'’-]+ (?:brothers|sisters)))\b")
# "Charles Reisner directed the film", "David Cronenberg directed and co-wrote".
_NAME_DIRECTED = re.compile(
    r"^((?:[A-Z][\w.'’-]*\s){1,3}[A-Z][\w'’-]+) (?:co-)?directed (?:the (?:film|picture|movie)|it|and)\b"
)
_PARTICLES = rule_words("directors", "particles")
_NAME_WORD = re.compile(r"[^\W\d_][^\W\d_'’.\-]*(?:['’.\-][^\W\d_]*)*\.?")
_NOT_NAMES = rule_words("directors", "not_names")
_OTHER_ROLES = re.compile(rf"\b(?:{rule_pattern('directors', 'other_role_patterns')})\b")


def extract_director(text: str) -> str | None:
    """The director named by "directed by X", "X directed the film" or "a 1944 film by X", else None.

    Only the first sentence and later ones about the film itself ("The film was directed by ...") count.
    """
    sentences = split_sentences(clean_text(text), limit=12)
    for index, sentence in enumerate(sentences):
        for match in _DIRECTED_BY.finditer(sentence):
            before = sentence[: match.start()]
            if _OTHER_FILM.search(before):
                continue
            if index and (
                not _FILM_REFERENCE.search(before)
                # "..., directed by" after another title is an aside about that title, unless it
                # continues a passive list about the film ("The film was written by X, directed by Y").
                or (re.search(r",\s*(?:also\s+)?$", before) and not _PASSIVE_LIST.search(before))
            ):
                continue
            name = _parse_names(sentence[match.end() :])
            if name:
                return name
        active = _NAME_DIRECTED.match(sentence)
        if active:
            return active.group(1)
    if sentences:
        for match in _FILM_BY.finditer(sentences[0]):
            name = _parse_names(sentences[0][match.end() :])
            if name:
                return name
    return None


def _is_name_word(word: str) -> bool:
    return bool(word[:1].isupper() and _NAME_WORD.fullmatch(word) and word not in _NOT_NAMES)


def _parse_names(rest: str) -> str | None:
    """Person names at the start of ``rest``: "F. W. Murnau (in his ...", "Joel and Ethan Coen, ..."."""
    rest = re.sub(r"^,? ?(?:and )?(?:also )?(?:starring )?", "", rest.strip())
    rest = _DESCRIPTOR.sub("", rest)
    collective = _COLLECTIVE.match(rest)
    if collective:
        return f"the {collective.group(1)}"
    tokens = rest.split(" ")
    names: list[list[str]] = []
    current: list[str] = []
    index = 0
    while index < len(tokens):
        raw = tokens[index]
        following = tokens[index + 1] if index + 1 < len(tokens) else ""
        if raw.startswith("(") and current:
            # "Eleanor Perry (screenplay adaptation) and Frank Perry (director)": an aside giving each
            # person's role keeps the director and drops the others; any other aside ends the name.
            close = next((i for i in range(index, len(tokens)) if ")" in tokens[i]), len(tokens) - 1)
            aside = " ".join(tokens[index : close + 1])
            after = tokens[close + 1] if close + 1 < len(tokens) else ""
            if re.search(r"\bdirect", aside):
                names.append(current)
            elif not (_OTHER_ROLES.search(aside) and after == "and"):
                break
            current = []
            index = close + 1
            if after != "and":
                break
            continue
        word = raw.rstrip(',;:)]"”')
        ends_clause = word != raw
        initial = re.fullmatch(r"(?:[A-Z]\.)+", word) is not None
        if word.endswith(".") and not initial:
            word, ends_clause = word[:-1], True
        next_is_name = _is_name_word(following.rstrip(",;:.)"))
        if _is_name_word(word):
            current.append(word)
        elif word in _PARTICLES and current and next_is_name:
            current.append(word)
        elif word in {"and", "&"} and next_is_name:
            if current:
                names.append(current)
            current = []
            index += 1
            continue
        else:
            break
        if ends_clause:
            break
        index += 1
    if current:
        names.append(current)
    # A lone surname ("also directed by Fleming") refers back to someone named elsewhere.
    if not names or len(names[-1]) < 2 or any(name[-1] in _COMPANY_WORDS for name in names):
        return None
    return " and ".join(" ".join(name) for name in names)
