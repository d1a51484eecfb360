from django.apps import AppConfig


class QuestdbConfig(AppConfig):
    name = "questdb"
    verbose_name = "Service API keys"
    default_auto_field = "django.db.models.BigAutoField"
