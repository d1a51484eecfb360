from django.apps import AppConfig


class QuestdbConfig(AppConfig):
    name = "questdb"
    verbose_name = "Service API keys"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from questdb.api import schema  # noqa: F401  (registers the API-key scheme with drf-spectacular)
