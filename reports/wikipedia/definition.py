"""The definition sentence, "<subject> is/was <predicate>.": its subject and whether its head noun is a film."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .text import ARTICLES, YEAR, bracket_depths, clean_text, rule_pattern, rule_words, split_sentences

_COPULA = re.compile(r"\s(?:is|was|are|were)\s")
_FILM_HEADS = rule_words("definition", "film_heads")
_GENRE_HEADS = rule_words("definition", "genre_heads")
_QUALIFIED_HEADS = rule_words("definition", "qualified_heads")
_FILM_QUALIFIERS = rule_words("definition", "film_qualifiers")
_PARTITIVES = rule_words("definition", "partitives")
_HARD_STOPS = rule_words("definition", "hard_stops")
_STAGE_WORDS = re.compile(rf"\b(?:{rule_pattern('definition', 'stage_patterns')})\b", re.IGNORECASE)
_FILMED_WORDS = re.compile(rf"\b(?:{rule_pattern('definition', 'filmed_patterns')})\b", re.IGNORECASE)


# "the 1968 science fiction novel ... and the 1968 film directed by Stanley Kubrick".
_COORDINATED_FILM = re.compile(
    rf"\band (?:the|its|a|an)(?: (?!(?:{rule_pattern('definition', 'coordination_breaks')})\b)[\w'’-]+){{0,4}}?"
    rf" (?:film|movie|motion picture)\b(?! (?:{rule_pattern('definition', 'not_film_nouns')}))",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Definition:
    subject: str
    text: str
    phrase: list[str]
    # "film", "genre", "qualified", "coordinated" or None when the predicate is not a film.
    kind: str | None
    film_phrase: str
    # The predicate after the film's noun phrase, where "released in 1948" may follow.
    after: str


def define(text: str) -> Definition | None:
    """Split the first sentence into subject and predicate and classify the predicate's head noun."""
    text = clean_text(text)
    sentences = split_sentences(text, limit=1)
    if not sentences:
        return None
    sentence = sentences[0]
    depths = bracket_depths(sentence)
    for match in _COPULA.finditer(sentence):
        if depths[match.start()]:
            continue
        predicate = sentence[match.end() :]
        # "is Hannah Arendt's account", "Love is Colder Than Death is a ...": not this sentence's verb.
        if predicate[:1].isupper():
            continue
        subject = sentence[: match.start()].strip()
        phrase, after = _noun_phrase(predicate)
        kind = _kind(phrase, sentence)
        film_phrase = " ".join(phrase) if kind else ""
        if kind is None:
            coordinated = _COORDINATED_FILM.search(predicate)
            if coordinated:
                kind, film_phrase = "coordinated", coordinated.group(0)
                after = predicate[coordinated.end() :]
        return Definition(subject, text, phrase, kind, film_phrase, after)
    return None


def _kind(phrase: list[str], sentence: str) -> str | None:
    if not phrase:
        return None
    head = _head_word(phrase[-1])
    before = {_head_word(word) for word in phrase[:-1]} | {word for word in phrase[:-1]}
    if head in _FILM_HEADS:
        return "film"
    if head in _QUALIFIED_HEADS and before & _FILM_QUALIFIERS:
        return "qualified"
    if head in _GENRE_HEADS:
        # "film noir", "silent comedy": the qualifier settles it; otherwise the sentence must say who
        # directed it and must not be about a stage work.
        if before & _FILM_QUALIFIERS:
            return "film"
        if _FILMED_WORDS.search(sentence) and not _STAGE_WORDS.search(sentence):
            return "genre"
    return None


def _noun_phrase(predicate: str) -> tuple[list[str], str]:
    """The predicate's first noun phrase (casefolded words, "one of"/"a type of" followed to the real
    head) and the rest of the predicate after it."""
    words = [word for word in predicate.split(" ") if word]
    phrase: list[str] = []
    index = 0
    while index < len(words):
        raw = words[index]
        if raw.startswith(("(", "[")):
            # An aside inside the phrase: "is a (normally temporary) route".
            depth = 0
            while index < len(words):
                depth += words[index].count("(") + words[index].count("[")
                depth -= words[index].count(")") + words[index].count("]")
                index += 1
                if depth <= 0:
                    break
            continue
        bare = _bare(raw)
        only_determiners = all(word in ARTICLES or YEAR.fullmatch(word) for word in phrase)
        if bare == "of":
            if phrase and _head_word(phrase[-1]) in _PARTITIVES and index + 1 < len(words):
                phrase.append(bare)
                index += 1
                continue
            break
        if bare in _HARD_STOPS:
            break
        if _is_soft(bare) and not only_determiners and not _film_ahead(words[index + 1 :]):
            # Past a film head a participle starts a new clause ("film depicting ..."); before one it
            # is usually an adjective ("a female given name", "the capital and most populous city").
            following = _bare(words[index + 1]) if index + 1 < len(words) else ""
            last = _head_word(phrase[-1]) if phrase else ""
            if last in _FILM_HEADS or following in _HARD_STOPS or _is_soft(following) or bare.endswith("ing"):
                break
        phrase.append(bare)
        index += 1
        # A full stop here is an abbreviation ("Warner Bros. musical"): the sentence is already cut.
        if raw.rstrip("\"”’'").endswith((",", ";", ":", "!", "?", ")")) and not (
            raw.endswith(",") and _film_ahead(words[index:])
        ):
            break
    return phrase, " ".join(words[index:])


_CONJUNCTIONS = rule_words("definition", "conjunctions")
_ING_NOUNS = rule_words("definition", "ing_nouns")
_IRREGULAR_PARTICIPLES = rule_words("definition", "irregular_participles")


def _is_soft(word: str) -> bool:
    """Words that may sit inside a film's noun phrase or end it: "and", "animated", "boxing", "newly"."""
    return (
        word in _CONJUNCTIONS | _IRREGULAR_PARTICIPLES
        or word.startswith("co-")
        or (len(word) > 4 and word.endswith(("ed", "ing", "ly")) and word not in _HARD_STOPS | _ING_NOUNS)
    )


def _film_ahead(words: list[str]) -> bool:
    """Whether the next few words still lead to a film head ("rape and revenge film", "Argentine, and
    French film"), so a coordinating word or participle continues the phrase instead of ending it."""
    for raw in words[:8]:
        bare = _bare(raw)
        if bare in _HARD_STOPS:
            return False
        head = _head_word(bare)
        if head in _FILM_HEADS or head in _GENRE_HEADS:
            return True
    return False


def _head_word(word: str) -> str:
    word = word.casefold().strip("\"“”‘’'.,;:!?()[]")
    # "pseudo-documentary", "horror-thriller", "comedy-drama": the last part is the head.
    return word.rsplit("-", 1)[-1] if "-" in word and not word.endswith("-") else word


def _bare(raw: str) -> str:
    return raw.casefold().strip("\"“”‘’'").rstrip(".,;:!?)]")


def describe(definition: Definition) -> str:
    """What the text says its subject is, for a rejection reason ("a city", "a form of larceny"), or ""
    when the noun phrase has no recognisable noun."""
    words = [word for word in definition.phrase if not YEAR.fullmatch(word)]
    # "a city and county seat", "an American actress and a Screen Actors Guild official": the first
    # of coordinated nouns is the main one (unless it is an adjective: "the 26th and final letter").
    for index, word in enumerate(words):
        if (
            word in _CONJUNCTIONS
            and index
            and not re.search(r"(?:\d(?:st|nd|rd|th)|ed|al|ic|ary|ive|ous)$", words[index - 1])
        ):
            words = words[:index]
            break
    words = [word for word in words if word not in _CONJUNCTIONS]
    while words and words[0] in {"the", "a", "an", "one", "of", "any", "some"}:
        words = words[1:]
    while words and words[-1] == "of":
        words = words[:-1]
    if not words:
        return ""
    if "of" in words:
        # Keep the partitive chain ("form of larceny") but not the adjectives before it.
        first_of = words.index("of")
        noun = " ".join(word for word in words[first_of - 1 :] if word not in ARTICLES)
    else:
        noun = words[-1]
    last = noun.split(" ")[-1]
    if (re.search(r"(?:ed|ing|ly|\d(?:st|nd|rd|th))$", last) and last not in _ING_NOUNS) or noun in {"most", "only"}:
        return ""
    if noun in {"someone", "something", "anyone", "everything"} or (
        noun.endswith("s") and not noun.endswith(("ss", "us", "is")) and " " not in noun
    ):
        return noun
    return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"
