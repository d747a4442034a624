import logging
import re

import pytest
from django.contrib.auth.models import User

from chat.models import Conversation, Message
from reports import views
from reports.models import Movie, MovieSection


def titles(response) -> list[str]:
    return [movie.title for movie in response.context["page"].object_list]


def test_the_film_list_shows_films_with_year_and_director(client, sample_movies):
    response = client.get("/")
    assert response.status_code == 200
    body = response.content.decode()
    assert '<a href="/movies/vertigo/"><span class="film-title">Vertigo</span></a>' in body
    assert (
        '<span class="film-meta"><span class="year">1958</span> · <span class="director">Alfred Hitchcock</span></span>'
        in body
    )
    assert f"{len(sample_movies)} films" in body


def test_the_film_list_searches_titles(client, sample_movies):
    response = client.get("/", {"q": "tokyo"})
    assert response.status_code == 200
    assert titles(response) == ["Tokyo Story"]
    assert "1 film<" in response.content.decode()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("vertgo", "Vertigo"),  # a letter missing
        ("Citizen Kain", "Citizen Kane"),  # a letter wrong
        ("samuri", "Seven Samurai"),  # a misspelt word inside a longer title
        ("godfather", "The Godfather"),  # no article
        ("SINGIN", "Singin' in the Rain"),  # case
    ],
)
def test_the_title_search_forgives_typos(client, sample_movies, query, expected):
    assert titles(client.get("/", {"q": query}))[0] == expected


def test_an_exact_substring_always_matches_even_when_too_short_to_look_similar(client, sample_movies):
    assert titles(client.get("/", {"q": "ck"})) == ["Duck Soup"]


def test_the_most_similar_titles_come_first(client, sample_movies):
    found = titles(client.get("/", {"q": "the"}))
    assert found[:2] == ["The Crowd", "The Godfather"]  # short titles starting with the word beat longer ones
    assert set(found) >= {"The Thin Red Line", "Atanarjuat: The Fast Runner", "Singin' in the Rain"}


def test_a_search_with_no_match_says_so(client, sample_movies):
    response = client.get("/", {"q": "zzzz"})
    assert "No film matches “zzzz”." in response.content.decode()


def test_the_film_list_filters_by_decade(client, sample_movies):
    response = client.get("/", {"decade": "1950"})
    expected = sorted(movie.title for movie in sample_movies.values() if 1950 <= movie.year < 1960)
    assert titles(response) == expected
    assert "Vertigo" in expected
    body = response.content.decode()
    assert '<a href="?decade=1950" aria-current="true">1950s</a>' in body
    assert response.context["decades"] == sorted({movie.year // 10 * 10 for movie in sample_movies.values()})


def test_a_decade_and_a_search_combine(client, sample_movies):
    assert titles(client.get("/", {"decade": "1950", "q": "samurai"})) == ["Seven Samurai"]
    assert titles(client.get("/", {"decade": "1960", "q": "samurai"})) == []


@pytest.mark.parametrize("decade", ["195", "abcd", "1955", "-1950"])
def test_a_malformed_decade_is_ignored(client, sample_movies, decade):
    assert len(titles(client.get("/", {"decade": decade}))) == len(sample_movies)


def make_films(count: int) -> None:
    Movie.objects.bulk_create(
        [
            Movie(
                slug=f"catalogue-{n}",
                title=f"Catalogue Film {n}",
                year=1900 + n % 120,
                director=f"Director {n}",
                source_text="-",
                source_hash="-",
            )
            for n in range(count)
        ]
    )


def test_page_links_keep_the_search_and_the_decade(client, sample_movies):
    make_films(1000)
    response = client.get("/", {"q": "catalogue film", "decade": "1990", "page": "2"})
    page = response.context["page"]
    assert (page.number, page.paginator.count) == (2, 80)
    body = response.content.decode()
    assert '<a rel="prev" href="?q=catalogue+film&amp;decade=1990&amp;page=1">' in body
    assert '<a rel="next" href="?q=catalogue+film&amp;decade=1990&amp;page=2">' not in body
    assert "Page 2 of 2" in body


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"page": "5"},
        {"q": "catalogue"},
        {"q": "catalgue film 7"},
        {"decade": "1950", "q": "film", "page": "2"},
        {"sort": "score", "page": "3"},
    ],
)
def test_the_film_list_takes_five_queries_at_a_thousand_films_then_one_until_they_change(
    client, sample_movies, django_assert_num_queries, params
):
    make_films(1000)
    # The corpus's generation with whether an import runs, the count, the page, the decades, and the genres,
    # countries and languages to filter by.
    with django_assert_num_queries(5):
        response = client.get("/", params)
    assert response.status_code == 200
    assert len(response.context["page"].object_list) > 0
    # Then the content as rendered, for as long as the generation is the same: one query.
    with django_assert_num_queries(1):
        again = client.get("/", params)
    assert again.content == response.content
    Movie.objects.filter(pk=sample_movies["Vertigo (film)"].pk).update(year=1958)  # a write: a new generation
    with django_assert_num_queries(5):
        client.get("/", params)


def test_each_page_has_its_own_title_kept_with_its_content(client, sample_movies):
    for _ in range(2):  # rendered, then kept
        assert (
            "<title>“vertigo” · 1950s · Films · flickora</title>"
            in client.get("/", {"q": "vertigo", "decade": "1950"}).content.decode()
        )
        assert "<title>Films · flickora</title>" in client.get("/").content.decode()
        assert "<title>Vertigo (1958) · flickora</title>" in client.get("/movies/vertigo/").content.decode()


def test_the_rendered_catalogue_is_never_stale(client, sample_movies):
    assert '<span class="film-title">Vertigo</span>' in client.get("/").content.decode()
    Movie.objects.filter(pk=sample_movies["Vertigo (film)"].pk).update(title="Vertigo, retitled")
    body = client.get("/").content.decode()
    assert '<span class="film-title">Vertigo, retitled</span>' in body
    assert '<span class="film-title">Vertigo</span>' not in body


def test_a_rendered_page_keeps_the_header_of_each_visitor(client, member, sample_movies):
    from django.test import Client

    path = f"/movies/{sample_movies['Duck Soup'].slug}/"
    assert '<a href="/accounts/login/?next=' in Client().get(path).content.decode()  # rendered and kept
    body = client.get(path).content.decode()  # the member's: the content kept, the header their own
    assert '<span class="who">member</span>' in body
    assert '<a href="/accounts/login/?next=' not in body


def test_a_film_page_shows_its_facts_as_they_are_now(client, sample_movies):
    from reports.models import FilmFacts

    movie = sample_movies["Duck Soup"]
    facts = FilmFacts.objects.create(movie=movie, imdb_id="tt0023969", matched_by="test", title="Duck Soup", year=1933)
    assert "<dt>Runtime</dt>" not in client.get(f"/movies/{movie.slug}/").content.decode()
    facts.runtime = 68
    facts.save()  # facts alone, no section: the page shows them all the same
    assert "<div><dt>Runtime</dt><dd>68 minutes</dd></div>" in client.get(f"/movies/{movie.slug}/").content.decode()


def test_the_film_search_reads_the_trigram_indexes(db):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes"
            " WHERE indexname IN ('movie_title_trgm', 'movie_title_upper_trgm') ORDER BY 1"
        )
        (_, plain), (_, upper) = cursor.fetchall()
    assert "USING gin (title gin_trgm_ops)" in plain
    assert "USING gin (upper((title)::text) gin_trgm_ops)" in upper
    # Each condition of the search is one an index answers: the ILIKE is written as UPPER(title) LIKE UPPER(...).
    sql = str(views.search_movies(Movie.objects.all(), "vertigo").query)
    assert 'WHERE ("reports_movie"."title" % vertigo OR "reports_movie"."title" %> vertigo OR ' in sql
    assert 'OR UPPER("reports_movie"."title"::text) LIKE UPPER(%vertigo%)) ORDER BY' in sql


def test_the_film_page_shows_its_sections_and_credits_wikipedia(client, sample_movies, django_assert_num_queries):
    movie = sample_movies["2001: A Space Odyssey"]
    sections = list(MovieSection.objects.for_movie(movie))
    with django_assert_num_queries(3):  # the corpus's generation, the film with its facts, its sections
        response = client.get(f"/movies/{movie.slug}/")
    assert response.status_code == 200
    with django_assert_num_queries(1):  # the generation: the same, so the same page as rendered
        assert client.get(f"/movies/{movie.slug}/").content == response.content
    body = response.content.decode()
    for section in sections:
        assert f'<details class="report-section" id="section-{section.pk}" open>' in body
        assert f"<summary><h2>{section.heading}</h2></summary>" in body
    assert "Text from Wikipedia, available under CC BY-SA 4.0." in body
    assert '<a href="https://en.wikipedia.org/wiki/2001%3A_A_Space_Odyssey" rel="noopener">Source article</a>' in body
    assert '<a href="https://creativecommons.org/licenses/by-sa/4.0/" rel="license noopener">Licence</a>' in body
    assert "<p>1968 · Directed by Stanley Kubrick</p>" in re.sub(r"<span[^>]*>|</span>", "", body).replace(
        '<p class="film-meta">', "<p>"
    )


def test_the_film_page_has_the_chat_panel(client, sample_movies):
    body = client.get("/movies/vertigo/").content.decode()
    assert 'data-scope="film" data-ask-url="/movies/vertigo/chat/"' in body
    assert 'data-film="vertigo"' in body
    assert 'role="log" aria-live="polite"' in body
    assert '<button type="button" class="suggestion">What is the film about?</button>' in body
    assert '<script type="module" src="/static/js/chat.js"></script>' in body
    assert client.cookies["csrftoken"].value


def test_an_unknown_film_is_a_404(client, db):
    assert client.get("/movies/no-such-film/").status_code == 404


def test_the_all_films_chat_page_has_the_panel(client, db):
    response = client.get("/chat/")
    assert response.status_code == 200
    body = response.content.decode()
    assert 'data-scope="all" data-ask-url="/chat/"' in body
    assert "data-film=" not in body
    assert client.cookies["csrftoken"].value


def test_the_all_films_chat_answers_get_and_post_only(client, db):
    assert client.put("/chat/").status_code == 405


def test_the_static_files_are_served(client, db):
    for path in ["/static/js/chat.js", "/static/css/site.css", "/static/favicon.svg"]:
        response = client.get(path)
        assert response.status_code == 200, path
    assert client.get("/static/js/chat.js")["Content-Type"].startswith("text/javascript")


@pytest.mark.django_db
def test_the_admin_lists_films_and_sections(client, sample_movies):
    admin = User.objects.create_superuser("admin", "admin@example.com", "pw-for-tests-only")
    client.force_login(admin)
    assert client.get("/admin/reports/movie/").status_code == 200
    movie = sample_movies["Vertigo (film)"]
    assert client.get(f"/admin/reports/movie/{movie.pk}/change/").status_code == 200
    assert client.get("/admin/reports/moviesection/").status_code == 200


# The conversation as JSON, history, delete and export.


@pytest.fixture
def member(client, db) -> User:
    user = User.objects.create_user("member", password="pw-for-tests-only")
    client.force_login(user)
    return user


def conversation_with_answers(user: User, movie: Movie | None) -> Conversation:
    """A question, its first answer (replaced by a regenerated one), and a follow-up whose answer failed."""
    section = MovieSection.objects.filter(movie=movie).first() if movie else MovieSection.objects.first()
    conversation = Conversation.objects.create(user=user, movie=movie, title="Who directed it?")
    question = Message.objects.create(conversation=conversation, role="user", content="Who directed it?")
    first = Message.objects.create(
        conversation=conversation, role="assistant", reply_to=question, content="Someone.", status="complete"
    )
    Message.objects.create(
        conversation=conversation,
        role="assistant",
        reply_to=question,
        regenerated_from=first,
        content=f"**Alfred Hitchcock** [{section.pk}].",
        status="complete",
        source_section_ids=[section.pk],
        cited_section_ids=[section.pk],
        provider="openai-compatible",
    )
    follow_up = Message.objects.create(conversation=conversation, role="user", content="And the music?")
    Message.objects.create(
        conversation=conversation,
        role="assistant",
        reply_to=follow_up,
        content="Bernard",
        status="failed",
        error_code="upstream_unavailable",
        error_text="Unavailable.",
        retryable=True,
    )
    return conversation


def test_the_conversation_json_has_what_a_reload_needs(client, member, sample_movies):
    movie = sample_movies["Vertigo (film)"]
    conversation = conversation_with_answers(member, movie)
    section = MovieSection.objects.filter(movie=movie).first()
    data = client.get(f"/chat/conversations/{conversation.uuid}/").json()
    assert (data["movie"], data["page"]) == ("vertigo", f"/movies/vertigo/?c={conversation.uuid}")
    question, replaced, answer, follow_up, failed = data["messages"]
    assert (question["role"], question["stream"]) == ("user", None)
    assert (replaced["replaced"], answer["replaced"], answer["reply_to"]) == (True, False, question["id"])
    assert answer["html"] == (
        f'<p><strong>Alfred Hitchcock</strong> <a href="/movies/vertigo/#section-{section.pk}" class="cite" '
        f'data-section="{section.pk}" rel="noopener">[{section.pk}]</a>.</p>'
    )
    assert answer["sources"] == [
        {
            "id": section.pk,
            "film": "Vertigo",
            "year": 1958,
            "slug": "vertigo",
            "url": f"/movies/vertigo/#section-{section.pk}",
            "heading": section.heading,
            "snippet": section.content[:240].rsplit(" ", 1)[0] + "…" if len(section.content) > 240 else section.content,
            "score": None,
        }
    ]
    assert answer["stream"] == f"/chat/messages/{answer['id']}/stream/"
    assert answer["stop"] == f"/chat/messages/{answer['id']}/stop/"
    assert answer["regenerate"] == f"/chat/messages/{answer['id']}/regenerate/"
    assert (failed["status"], failed["html"], failed["content"]) == ("failed", None, "Bernard")
    assert failed["error"] == {
        "code": "upstream_unavailable",
        "message": "Unavailable.",
        "retryable": True,
        "retry_after": None,
    }
    assert follow_up["content"] == "And the music?"


def test_the_conversation_json_takes_a_fixed_number_of_queries(
    client, member, sample_movies, django_assert_num_queries
):
    conversation = conversation_with_answers(member, sample_movies["Vertigo (film)"])
    for _ in range(5):
        conversation_with_answers(member, sample_movies["Vertigo (film)"]).messages.update(conversation=conversation)
    with django_assert_num_queries(5):  # session, user, conversation, messages, sections
        assert client.get(f"/chat/conversations/{conversation.uuid}/").status_code == 200


def test_the_history_lists_the_owners_conversations_latest_first(client, member, sample_movies):
    older = conversation_with_answers(member, sample_movies["Vertigo (film)"])
    newer = conversation_with_answers(member, None)
    newer.title = "Samurai films"
    newer.save()
    Conversation.objects.create(user=User.objects.create_user("someone-else"), title="Not mine")
    response = client.get("/chat/history/")
    body = response.content.decode()
    assert [c.uuid for c in response.context["page"].object_list] == [newer.uuid, older.uuid]
    assert f'<a class="history-title" href="/chat/?c={newer.uuid}">Samurai films</a>' in body
    assert f'<a class="history-title" href="/movies/vertigo/?c={older.uuid}">Who directed it?</a>' in body
    assert "Vertigo (1958)" in body
    assert "2 questions" in body
    assert "Not mine" not in body


def test_the_history_of_a_new_visitor_invites_to_sign_up(client, db):
    body = client.get("/chat/history/").content.decode()
    assert "No conversations yet." in body
    assert 'href="/accounts/signup/?next=/chat/history/"' in body


def test_the_owner_deletes_a_conversation(client, member, sample_movies):
    conversation = conversation_with_answers(member, sample_movies["Vertigo (film)"])
    response = client.post(f"/chat/conversations/{conversation.uuid}/delete/")
    assert (response.status_code, response["Location"]) == (302, "/chat/history/")
    assert not Conversation.objects.filter(pk=conversation.pk).exists()
    assert not Message.objects.filter(conversation_id=conversation.pk).exists()
    assert "Deleted “Who directed it?”." in client.get("/chat/history/").content.decode()


def test_deleting_needs_a_post_with_the_csrf_token(member, sample_movies):
    from django.test import Client

    conversation = conversation_with_answers(member, sample_movies["Vertigo (film)"])
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(member)
    assert strict.get(f"/chat/conversations/{conversation.uuid}/delete/").status_code == 405
    assert strict.post(f"/chat/conversations/{conversation.uuid}/delete/").status_code == 403
    assert Conversation.objects.filter(pk=conversation.pk).exists()


def test_someone_elses_conversation_cannot_be_deleted_or_exported(client, member, sample_movies):
    other = conversation_with_answers(User.objects.create_user("other"), sample_movies["Vertigo (film)"])
    anonymous = Conversation.objects.create(session_key="someone-elses-session", title="Anonymous")
    for conversation in (other, anonymous):
        assert client.post(f"/chat/conversations/{conversation.uuid}/delete/").status_code == 404
        assert client.get(f"/chat/conversations/{conversation.uuid}/export.md").status_code == 404
        assert client.get(f"/chat/conversations/{conversation.uuid}/").status_code == 404
    assert Conversation.objects.filter(pk__in=[other.pk, anonymous.pk]).count() == 2


# The test client reads the streamed export all at once (Django warns); the live server streams it.
@pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume asynchronous iterators")
def test_a_conversation_exports_as_markdown(client, member, sample_movies):
    conversation = conversation_with_answers(member, sample_movies["Vertigo (film)"])
    section = MovieSection.objects.filter(movie__slug="vertigo").first()
    response = client.get(f"/chat/conversations/{conversation.uuid}/export.md")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/markdown; charset=utf-8"
    filename = f"flickora-vertigo-{conversation.created_at:%Y-%m-%d}-{str(conversation.uuid)[:8]}.md"
    assert response["Content-Disposition"] == f'attachment; filename="{filename}"'
    url = f"http://testserver/movies/vertigo/#section-{section.pk}"
    assert response.streaming
    assert b"".join(response).decode() == "\n".join(
        [
            "# Who directed it?",
            "",
            f"About *Vertigo (1958)* · http://testserver/movies/vertigo/?c={conversation.uuid}  ",
            f"Started {conversation.created_at:%Y-%m-%d %H:%M} UTC",
            "",
            "## You",
            "",
            "Who directed it?",
            "",
            "## flickora",
            "",
            f"**Alfred Hitchcock** [{section.pk}].",
            "",
            "Sources:",
            "",
            f"- [Vertigo: {section.heading}]({url})",
            "",
            f"[{section.pk}]: {url} (Vertigo: {section.heading})",
            "",
            "## You",
            "",
            "And the music?",
            "",
            "## flickora",
            "",
            "Bernard",
            "",
            "*No answer: Unavailable.*",
            "",
        ]
    )


@pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume asynchronous iterators")
def test_an_answer_regenerated_after_later_questions_is_exported_under_its_own_question(client, member):
    conversation = Conversation.objects.create(user=member, title="Order")
    first = Message.objects.create(conversation=conversation, role="user", content="First?")
    old = Message.objects.create(conversation=conversation, role="assistant", reply_to=first, content="Old one.")
    second = Message.objects.create(conversation=conversation, role="user", content="Second?")
    Message.objects.create(conversation=conversation, role="assistant", reply_to=second, content="Two.")
    Message.objects.create(
        conversation=conversation, role="assistant", reply_to=first, regenerated_from=old, content="New one."
    )
    Message.objects.create(conversation=conversation, role="user", content="Third?")
    text = b"".join(client.get(f"/chat/conversations/{conversation.uuid}/export.md")).decode()
    turns = text.split("\n\n## You\n\n")[1:]
    assert turns == [
        "First?\n\n## flickora\n\nNew one.",
        "Second?\n\n## flickora\n\nTwo.",
        "Third?\n\n## flickora\n\n*No answer.*\n",
    ]


def test_under_asgi_no_middleware_is_adapted_to_a_thread(caplog, settings):
    from django.core.handlers.asgi import ASGIHandler

    settings.DEBUG = True  # Django logs each adaptation in DEBUG only
    with caplog.at_level(logging.DEBUG, logger="django.request"):
        ASGIHandler()
    assert [r.getMessage() for r in caplog.records if "adapted" in r.getMessage()] == []


def test_static_files_are_served_through_asgi(web):
    response = web.get("/static/js/chat.js")
    assert (response.status_code, response.headers["content-type"]) == (200, 'text/javascript; charset="utf-8"')
    assert "EventSource" in response.text
    assert web.get("/static/no-such-file.js").status_code == 404
