"""The users endpoints, mounted by the root URLconf under the API root."""

from accounts.api.views import UserViewSet
from questdb.api.paths import api_router

urlpatterns = api_router("users", UserViewSet, basename="user")
