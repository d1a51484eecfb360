from django.contrib import admin
from rest_framework_api_key.admin import APIKeyModelAdmin

from questdb.models import ServiceAPIKey


@admin.register(ServiceAPIKey)
class ServiceAPIKeyAdmin(APIKeyModelAdmin):
    list_display = (*APIKeyModelAdmin.list_display, "scope")
    list_filter = (*APIKeyModelAdmin.list_filter, "scope")
