from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from questdb.api import probes
from questdb.api.paths import API_ROOT

# Each app owns its endpoints (its api/urls.py); they are mounted here by module name.
urlpatterns = [
    *(path(API_ROOT, include(f"{app}.api.urls")) for app in ("accounts", "characters", "sessions_app")),
    path("api/schema/", SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[]), name="schema"),
    path(
        "api/docs/",
        SpectacularSwaggerView.as_view(url_name="schema", authentication_classes=[], permission_classes=[]),
        name="docs",
    ),
    path(
        "api/redoc/",
        SpectacularRedocView.as_view(url_name="schema", authentication_classes=[], permission_classes=[]),
        name="redoc",
    ),
    path("healthz", probes.healthz, name="healthz"),
    path("readyz", probes.readyz, name="readyz"),
    path("metrics", probes.metrics, name="metrics"),
    path("admin/", admin.site.urls),
]

handler400 = "questdb.api.errors.bad_request_view"
handler403 = "questdb.api.errors.forbidden_view"
handler404 = "questdb.api.errors.not_found_view"
handler500 = "questdb.api.errors.server_error_view"
