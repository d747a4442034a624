from django.conf import settings
from django.contrib.postgres.search import TrigramSimilarity, TrigramWordSimilarity
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import F, Q, QuerySet
from django.db.models.functions import Greatest
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string
from django.views.decorators.csrf import ensure_csrf_cookie

from reports import generations, importing, tmdb
from reports.generations import GenerationCache
from reports.models import Movie, MovieSection

PAGE_SIZE = 48
QUERY_CHARS = 200
# Questions offered in an empty chat: each one is answered by a kind of section most reports have.
FILM_SUGGESTIONS = [
    "What is the film about?",
    "Who directed it, and who stars in it?",
    "How was it made?",
    "How was it received?",
]


def search_movies(movies: QuerySet[Movie], query: str) -> QuerySet[Movie]:
    """Titles that contain the query, or look like it (a typo, a missing word), the most similar first.

    `%` (similarity) catches a misspelt whole title, `<%` (word similarity) a misspelt word inside a longer one,
    and ILIKE keeps every exact substring even when it is too short to look similar. All three read the
    trigram GIN index.
    """
    return (
        movies.filter(
            Q(title__trigram_similar=query) | Q(title__trigram_word_similar=query) | Q(title__icontains=query)
        )
        .annotate(
            similarity=TrigramSimilarity("title", query),
            rank=Greatest("similarity", TrigramWordSimilarity(query, "title")),
        )
        # Among titles that contain the query word for word, the closest as a whole first ("The Godfather"
        # before "The Godfather Part II").
        .order_by("-rank", "-similarity", "title")
    )


def _decade(raw: str) -> int | None:
    return int(raw) if raw.isdigit() and len(raw) == 4 and raw.endswith("0") else None


# The catalogue's orders: by title, by year (oldest first), by the critics' score (Rotten Tomatoes, best first).
SORTS = {
    "title": ["title", "id"],
    "year": [F("year").asc(nulls_last=True), "title", "id"],
    "score": [F("facts__tomatometer").desc(nulls_last=True), "title", "id"],
}
# The facts the catalogue filters by: the query parameter, and the FilmFacts list it looks in.
FACETS = {"genre": "genres", "country": "countries", "language": "languages"}
FACET_CHARS = 100

# Every value of the facets, in one query.
FACETS_SQL = " UNION ALL ".join(
    f"(SELECT '{name}', value FROM (SELECT DISTINCT unnest({column}) AS value FROM reports_filmfacts) v)"  # noqa: S608 (constant)
    for name, column in FACETS.items()
)


# The facet values, by the corpus generation they were read at: reading them unnests every film's facts (tens of
# milliseconds at 17,000 films).
facet_values: GenerationCache[dict[str, list[str]]] = GenerationCache(lambda: 1)


def _facet_values(generation: int) -> dict[str, list[str]]:
    if (found := facet_values.get("facets", generation)) is not None:
        return found
    values: dict[str, list[str]] = {name: [] for name in FACETS}
    with connection.cursor() as cursor:
        cursor.execute(FACETS_SQL)
        for name, value in cursor.fetchall():
            values[name].append(value)
    found = {name: sorted(found, key=str.casefold) for name, found in values.items()}
    facet_values.put("facets", generation, found)
    return found


# The pages' title and content as rendered (the same for every visitor; the header around them is not), by the
# corpus generation: rendering the catalogue's 48 films and its facets is most of its cost. `PAGE_CACHE_SIZE` pages.
rendered: GenerationCache[tuple[str, str]] = GenerationCache(lambda: settings.PAGE_CACHE_SIZE)


# The decades that have films: one probe of the year index per decade, not a scan of every film.
DECADES_SQL = """
SELECT decade
  FROM generate_series((SELECT min(year) / 10 * 10 FROM reports_movie), (SELECT max(year) FROM reports_movie), 10)
       AS decade
 WHERE EXISTS (SELECT FROM reports_movie WHERE year >= decade AND year < decade + 10)
 ORDER BY decade
"""


def _decades() -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(DECADES_SQL)
        return [decade for (decade,) in cursor.fetchall()]


@ensure_csrf_cookie
def movie_list(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:QUERY_CHARS]
    decade = _decade(request.GET.get("decade", ""))
    state = importing.catalogue_state()
    # Its links keep every parameter of the query string (`{% querystring %}`), so the whole of it is the key.
    key = ("catalogue", state.importing, tuple(sorted((name, tuple(values)) for name, values in request.GET.lists())))
    if (found := rendered.get(key, state.generation)) is None:
        title = " · ".join([*([f"“{query}”"] if query else []), *([f"{decade}s"] if decade else []), "Films"])
        found = (title, _catalogue(request, query, decade, state))
        rendered.put(key, state.generation, found)
    title, content = found
    return render(request, "reports/movie_list.html", {"title": title, "content": content})


def _catalogue(request: HttpRequest, query: str, decade: int | None, state: importing.CatalogueState) -> str:
    sort = request.GET.get("sort", "")
    sort = sort if sort in SORTS else "title"
    chosen = {name: request.GET.get(name, "").strip()[:FACET_CHARS] for name in [*FACETS, "person"]}
    movies = Movie.objects.select_related("facts").only(
        "slug", "title", "year", "director", "facts__tomatometer", "facts__movie_id"
    )
    if decade:
        movies = movies.filter(year__gte=decade, year__lt=decade + 10)
    for name, column in FACETS.items():
        if chosen[name]:
            movies = movies.filter(**{f"facts__{column}__contains": [chosen[name]]})
    if person := chosen["person"]:
        movies = movies.filter(Q(facts__directors__contains=[person]) | Q(facts__cast__contains=[person]))
    if query:
        movies = search_movies(movies, query)
    else:
        movies = movies.order_by(*SORTS[sort])
    context = {
        "page": Paginator(movies, PAGE_SIZE).get_page(request.GET.get("page")),
        "query": query,
        "decade": decade,
        "decades": _decades(),
        "sort": sort,
        "sorts": list(SORTS),
        "chosen": chosen,
        "facets": _facet_values(state.generation),
        "filtered": any(chosen.values()) or bool(decade),
        "importing": state.importing,
    }
    return render_to_string("reports/catalogue.html", context, request)


@ensure_csrf_cookie  # the page's chat panel POSTs questions
def movie_detail(request: HttpRequest, slug: str) -> HttpResponse:
    generation = generations.current()
    if (found := rendered.get(("film", slug), generation)) is None:
        found = _film(request, slug)
        rendered.put(("film", slug), generation, found)
    title, content = found
    return render(request, "reports/movie_detail.html", {"title": title, "content": content})


def _film(request: HttpRequest, slug: str) -> tuple[str, str]:
    movie = get_object_or_404(Movie.objects.select_related("facts"), slug=slug)
    sections = MovieSection.objects.for_movie(movie).only("id", "kind", "origin", "heading", "content", "position")
    context = {
        "movie": movie,
        "facts": getattr(movie, "facts", None),
        "sections": sections,
        "decade": movie.year // 10 * 10 if movie.year else None,
        "suggestions": FILM_SUGGESTIONS,
        "tmdb_attribution": tmdb.ATTRIBUTION,
    }
    title = f"{movie.title} ({movie.year})" if movie.year else movie.title
    return title, render_to_string("reports/film.html", context, request)
