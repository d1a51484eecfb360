"""Comparison code for the questdb benchmark: the API key check, the simple way (a query per request)."""

from rest_framework_api_key.permissions import BaseHasAPIKey

from questdb.models import ServiceAPIKey


class HasServiceAPIKey(BaseHasAPIKey):
    model = ServiceAPIKey
