"""Comparison code for the questdb benchmark: the naive app's routes, on questdb's paths."""

from django.urls import include, path
from rest_framework.routers import DefaultRouter

from bench.naive.views import CharacterViewSet, SessionViewSet, UserViewSet

router = DefaultRouter()
router.register("users", UserViewSet)
router.register("characters", CharacterViewSet)
router.register("sessions", SessionViewSet)

urlpatterns = [path("api/v1/", include(router.urls))]
