from django.contrib import admin
from django.urls import reverse_lazy

from questdb.console import dashboard


class ConsoleSite(admin.AdminSite):
    site_header = "questdb staff console"
    site_title = "questdb"
    index_title = "Dashboard"
    site_url = reverse_lazy("docs")  # "View site": the API's documentation
    index_template = "console/index.html"

    def index(self, request, extra_context=None):
        return super().index(request, {"dashboard": dashboard.summary(), **(extra_context or {})})
