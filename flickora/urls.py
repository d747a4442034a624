from django.contrib import admin
from django.urls import include, path

from flickora import views

urlpatterns = [
    path("", include("reports.urls")),
    path("", include("chat.urls")),
    path("accounts/", include("accounts.urls")),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
]
