import pytest
from django.contrib.auth.models import User

from reports.models import MovieSection


def test_the_film_list_shows_films_with_year_and_director(client, sample_movies):
    response = client.get("/")
    assert response.status_code == 200
    body = response.content.decode()
    assert '<a href="/movies/vertigo/">Vertigo</a> <span class="year">1958</span>' in body
    assert f"{len(sample_movies)} films" in body


def test_the_film_list_searches_titles(client, sample_movies):
    response = client.get("/", {"q": "tokyo"})
    assert response.status_code == 200
    assert list(response.context["page"].object_list.values_list("title", flat=True)) == ["Tokyo Story"]
    assert "1 film<" in response.content.decode()


def test_a_search_with_no_match_says_so(client, sample_movies):
    response = client.get("/", {"q": "zzzz"})
    assert "No film matches “zzzz”." in response.content.decode()


def test_the_film_page_shows_its_sections_and_credits_wikipedia(client, sample_movies, django_assert_num_queries):
    movie = sample_movies["2001: A Space Odyssey"]
    sections = list(MovieSection.objects.for_movie(movie))
    with django_assert_num_queries(2):
        response = client.get(f"/movies/{movie.slug}/")
    assert response.status_code == 200
    body = response.content.decode()
    for section in sections:
        assert f'<section class="report-section" id="section-{section.pk}">' in body
    assert "Text from Wikipedia, available under CC BY-SA 4.0." in body
    assert '<a href="https://en.wikipedia.org/wiki/2001%3A_A_Space_Odyssey" rel="noopener">Source article</a>' in body


def test_an_unknown_film_is_a_404(client, db):
    assert client.get("/movies/no-such-film/").status_code == 404


@pytest.mark.django_db
def test_the_admin_lists_films_and_sections(client, sample_movies):
    admin = User.objects.create_superuser("admin", "admin@example.com", "pw-for-tests-only")
    client.force_login(admin)
    assert client.get("/admin/reports/movie/").status_code == 200
    movie = sample_movies["Vertigo (film)"]
    assert client.get(f"/admin/reports/movie/{movie.pk}/change/").status_code == 200
    assert client.get("/admin/reports/moviesection/").status_code == 200
