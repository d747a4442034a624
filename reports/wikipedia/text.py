"""The rules' words (from ``rules.toml``), text normalisation and sentence splitting."""

from __future__ import annotations

import re
import tomllib
import unicodedata
from pathlib import Path

RULES = tomllib.loads(Path(__file__).with_name("rules.toml").read_text(encoding="utf-8"))


def rule_words(section: str, name: str) -> frozenset[str]:
    return frozenset(RULES[section][name])


def rule_pattern(section: str, name: str) -> str:
    """A list from the rules as one regular-expression alternation, tried in the list's order; only
    lists named ``*_patterns`` hold expressions, the others plain words."""
    items = RULES[section][name]
    return "|".join(items if name.endswith("_patterns") else map(re.escape, items))


INVISIBLE = dict.fromkeys(map(ord, RULES["text"]["invisible"]), None)
_LETTER_FOLDS = str.maketrans(RULES["text"]["letter_folds"])
NUMBER_WORDS = dict(enumerate(RULES["text"]["numbers"]))
_SPELLINGS = RULES["text"]["spellings"]
ARTICLES = {"the", "a", "an"}
# A plausible film year standing alone ("1958", not "1958-59" or "1920s").
YEAR = re.compile(r"(?<![\w-])(1[89]\d\d|20[0-4]\d)(?![\w-])")


def clean_text(text: str) -> str:
    """Whitespace-normalised text, with sentences glued by a missing space ("pictures.North") split."""
    text = re.sub(r"(?<=.)\.(?=[^\W\d_]{2})", _space_glued_sentence, text.translate(INVISIBLE))
    return re.sub(r"\s+", " ", text).strip()


def _space_glued_sentence(match: re.Match[str]) -> str:
    before = match.string[match.start() - 1]
    following = match.string[match.end() : match.end() + 2]
    # "pictures.North", "Buñuel.Óscar"; not initials ("U.S.") or abbreviations before a capital.
    glued = following[0].isupper() and following[1].islower() and before.islower()
    return ". " if glued else "."


def fold(text: str) -> list[str]:
    """Tokens compared case-, accent- and punctuation-insensitively ("Lăzărescu" == "Lazarescu")."""
    text = unicodedata.normalize("NFKD", text.translate(_LETTER_FOLDS))
    text = "".join(char for char in text if not unicodedata.combining(char))
    text = re.sub(r"['’ʼ`]", "", text.casefold()).replace("&", " and ")
    tokens = re.findall(r"[^\W_]+", text)
    return [
        _SPELLINGS.get(token, NUMBER_WORDS.get(int(token), token) if token.isascii() and token.isdecimal() else token)
        for token in tokens
    ]


_ABBREVIATIONS = rule_words("text", "abbreviations")


def bracket_depths(text: str) -> list[int]:
    depth, depths = 0, []
    for char in text:
        if char in "([{":
            depth += 1
        depths.append(depth)
        if char in ")]}" and depth:
            depth -= 1
    return depths


def split_sentences(text: str, limit: int) -> list[str]:
    """The first ``limit`` sentences; full stops inside parentheses or after initials do not count."""
    depths = bracket_depths(text)
    sentences, start = [], 0
    for match in re.finditer(r"\.(?=\s+\S|$)", text):
        end = match.start()
        following = text[match.end() :].lstrip()[:1]
        if following and not (following.isupper() or following.isdigit() or following in "\"“‘'"):
            continue
        if depths[end]:
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
