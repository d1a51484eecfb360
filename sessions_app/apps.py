from django.apps import AppConfig


class SessionsConfig(AppConfig):
    name = "sessions_app"
    # Django's contrib app already owns the label "sessions".
    label = "sessions_app"
    verbose_name = "Login sessions"

    def ready(self) -> None:
        from sessions_app import signals  # noqa: F401  (cache invalidation receivers)
