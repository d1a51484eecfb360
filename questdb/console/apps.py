from django.contrib.admin.apps import AdminConfig


class ConsoleAdminConfig(AdminConfig):
    """django.contrib.admin, served by questdb's own site (branding, dashboard)."""

    default_site = "questdb.console.site.ConsoleSite"
