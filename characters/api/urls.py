"""The characters endpoints, mounted by the root URLconf under the API root."""

from characters.api.views import CharacterViewSet
from questdb.api.paths import api_router

urlpatterns = api_router("characters", CharacterViewSet, basename="character")
