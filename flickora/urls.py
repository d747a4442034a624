from django.contrib import admin
from django.urls import include, path

from accounts.forms import AdminLoginForm
from flickora import views

# The admin's login counts failures against the same limits as the site's.
admin.site.login_form = AdminLoginForm

urlpatterns = [
    path("", include("reports.urls")),
    path("", include("chat.urls")),
    path("accounts/", include("accounts.urls")),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
]
