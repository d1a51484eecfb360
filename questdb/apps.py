from django.apps import AppConfig


class QuestdbConfig(AppConfig):
    name = "questdb"
    verbose_name = "Service API keys"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import pre_migrate

        from questdb.api import schema  # noqa: F401  (registers the API-key scheme with drf-spectacular)
        from questdb.db.roles import refuse_migrations_without_create

        pre_migrate.connect(refuse_migrations_without_create, sender=self, dispatch_uid="questdb-migrate-as-owner")
