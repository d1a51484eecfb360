from django.apps import AppConfig
from django.db import connections
from django.db.models.signals import post_migrate


def install_triggers(sender, using: str, **kwargs) -> None:
    """Install the audit triggers once every table they read and write exists (after `migrate`).

    They are not in the apps' migrations (PGTRIGGER_MIGRATIONS = False): the tracked tables belong to
    other apps, and a migration of one app to zero would otherwise leave triggers pointing at nothing.
    """
    import pgtrigger

    from audit.models import CharacterEvent, SessionEvent, UserEvent

    tables = set(connections[using].introspection.table_names())
    needed = {
        model._meta.db_table
        for event in (UserEvent, CharacterEvent, SessionEvent)
        for model in (event, event.pgh_tracked_model)
    }
    if connections[using].vendor == "postgresql" and needed <= tables:
        pgtrigger.install(database=using)


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit trail"

    def ready(self) -> None:
        post_migrate.connect(install_triggers, sender=self)
