from django.core.management.base import BaseCommand

from characters.services import characters_purge_due


class Command(BaseCommand):
    help = "Delete for good every character whose deletion grace period has passed."

    def handle(self, *args, **options) -> None:
        purged = characters_purge_due()
        self.stdout.write(f"Purged {purged} character(s).")
