from django.apps import AppConfig


class CharactersConfig(AppConfig):
    name = "characters"
    verbose_name = "Characters"

    def ready(self) -> None:
        from characters import signals  # noqa: F401  (cache invalidation receivers)
