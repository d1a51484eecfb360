"""What the apps add to the staff console.

The console sits below the apps (they build on it), and the apps sit one above the other: sessions and
characters build on accounts. A page that shows more than its own app, the dashboard or a user's page with
the user's sessions and characters, names no app above it: each app registers its parts from its admin
module (loaded by the admin's autodiscovery before any request), and the page reads them here.
"""

from collections.abc import Callable
from typing import Any

_dashboard_figures: list[Callable[[], dict[str, Any]]] = []
_user_page_inlines: list[type] = []
_sign_out_user: list[Callable[..., int]] = []


def add_dashboard_figures(figures: Callable[[], dict[str, Any]]) -> None:
    """`figures()` returns named values for the front page's template (computed on each visit)."""
    if figures not in _dashboard_figures:
        _dashboard_figures.append(figures)


def dashboard_figures() -> dict[str, Any]:
    values: dict[str, Any] = {}
    for figures in _dashboard_figures:
        values.update(figures())
    return values


def add_user_page_inline(inline: type) -> None:
    """An inline (of a model with a foreign key to the user) shown on each user's change page."""
    if inline not in _user_page_inlines:
        _user_page_inlines.append(inline)


def user_page_inlines() -> list[type]:
    return list(_user_page_inlines)


def set_sign_out_user(sign_out: Callable[..., int]) -> None:
    """What ends every session of a user: `sign_out(user_id=...)` returns how many it ended."""
    _sign_out_user[:] = [sign_out]


def sign_out_user(*, user_id) -> int:
    """End every session of the user (staff's "Sign out everywhere", and a ban); 0 when no app keeps sessions."""
    return _sign_out_user[0](user_id=user_id) if _sign_out_user else 0
