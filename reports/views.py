from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.csrf import ensure_csrf_cookie

from reports.models import Movie, MovieSection

PAGE_SIZE = 48


@ensure_csrf_cookie
def movie_list(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:200]
    movies = Movie.objects.only("slug", "title", "year", "director")
    if query:
        movies = movies.filter(title__icontains=query)
    page = Paginator(movies, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "reports/movie_list.html", {"page": page, "query": query})


@ensure_csrf_cookie  # the page's chat panel POSTs questions
def movie_detail(request: HttpRequest, slug: str) -> HttpResponse:
    movie = get_object_or_404(Movie, slug=slug)
    sections = MovieSection.objects.for_movie(movie).only("id", "kind", "heading", "content", "position")
    return render(request, "reports/movie_detail.html", {"movie": movie, "sections": sections})
