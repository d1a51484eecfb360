"""The API's URL root, written once: the apps' URLconfs are mounted under it and the hit path matches it."""

from rest_framework.routers import DefaultRouter

API_ROOT = "api/v1/"


def api_router(prefix: str, viewset, *, basename: str) -> list:
    """The URL patterns of one app's viewset, for the root URLconf to mount under API_ROOT by module name."""
    router = DefaultRouter(trailing_slash=True)
    router.include_root_view = False
    router.register(prefix, viewset, basename=basename)
    return router.urls
