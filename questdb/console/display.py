"""How the staff console shows times and durations: always in UTC, and saying so."""

from datetime import datetime, timedelta

from django.contrib import admin


def utc(moment: datetime | None) -> str:
    return "—" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def time_left(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {minutes}m" if hours else f"{minutes}m"


def utc_column(field: str, label: str):
    """A list column or read-only field showing `field` in UTC, labelled so."""

    @admin.display(description=f"{label} (UTC)", ordering=field)
    def show(*args) -> str:  # (admin, obj) as a ModelAdmin attribute, (obj) alone elsewhere
        return utc(getattr(args[-1], field))

    show.__name__ = f"{field}_utc"
    return show
