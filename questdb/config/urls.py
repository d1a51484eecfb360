from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from accounts.api.views import UserViewSet
from characters.api.views import CharacterViewSet
from questdb.api import probes
from questdb.api.paths import API_ROOT
from sessions_app.api.views import SessionViewSet

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("users", UserViewSet, basename="user")
router.register("characters", CharacterViewSet, basename="character")
router.register("sessions", SessionViewSet, basename="session")

urlpatterns = [
    path(API_ROOT, include(router.urls)),
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
