from django.core.management.base import BaseCommand, CommandError

from questdb.models import Scope, ServiceAPIKey


class Command(BaseCommand):
    help = "Create an API key for a calling service. The key is printed once, alone on the last line."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="The calling service, e.g. auth-server.")
        parser.add_argument("--scope", choices=Scope.values, required=True)

    def handle(self, *args, name: str, scope: str, **options) -> None:
        if not name.strip():
            raise CommandError("NAME must not be empty.")
        api_key, key = ServiceAPIKey.objects.create_key(name=name.strip(), scope=scope)
        self.stdout.write(
            f"Created {scope} key {api_key.prefix} for {api_key.name}. Store it now; it is not shown again."
        )
        self.stdout.write(key)
