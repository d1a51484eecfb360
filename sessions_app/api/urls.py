"""The sessions endpoints, mounted by the root URLconf under the API root."""

from questdb.api.paths import api_router
from sessions_app.api.views import SessionViewSet

urlpatterns = api_router("sessions", SessionViewSet, basename="session")
