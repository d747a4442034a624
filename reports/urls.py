from django.urls import path

from reports import views

app_name = "reports"
urlpatterns = [
    path("", views.movie_list, name="movie_list"),
    path("movies/<slug:slug>/", views.movie_detail, name="movie_detail"),
]
