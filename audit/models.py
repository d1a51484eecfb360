"""What the audit trail records: PostgreSQL triggers (django-pghistory) write one event row per change.

Triggers see every writer: the admin, the API, management commands, raw SQL and the identity app.
A staff request adds who made the change and from which page (questdb.api.middleware.HistoryMiddleware);
a staff action adds its name (`audit.actions.staff_action`).
"""

import pghistory
import pgtrigger
from pghistory.models import MiddlewareEvents

from accounts.models import User
from characters.models import Character
from sessions_app.models import Session

# A write that only bumps updated_at is not a change anybody needs to read about.
_CHANGED = pghistory.AnyChange(exclude=["updated_at"])

pghistory.track(
    pghistory.InsertEvent("create"),
    pghistory.UpdateEvent("update", condition=_CHANGED),
    pghistory.DeleteEvent("delete"),
    app_label="audit",
    model_name="UserEvent",
    obj_field=pghistory.ObjForeignKey(related_name="audit_events", db_constraint=False),
)(User)

pghistory.track(
    pghistory.InsertEvent("create"),
    pghistory.UpdateEvent("update", condition=_CHANGED),
    pghistory.DeleteEvent("delete"),
    app_label="audit",
    model_name="CharacterEvent",
    obj_field=pghistory.ObjForeignKey(related_name="audit_events", db_constraint=False),
)(Character)

pghistory.track(
    # Not sign-ins or keep-alive refreshes (the identity app's and the game's routine), only endings:
    # an expiry brought forward, and a deleted session (sign-out, "sign out everywhere", a ban).
    pghistory.UpdateEvent(
        "expire",
        condition=pgtrigger.Q(new__expires_at__lt=pgtrigger.F("old__expires_at")),
    ),
    pghistory.DeleteEvent("sign_out"),
    # The token is a bearer secret: it never enters the audit trail.
    exclude=["token"],
    app_label="audit",
    model_name="SessionEvent",
    obj_field=pghistory.ObjForeignKey(related_name="audit_events", db_constraint=False),
)(Session)


class AuditEvent(MiddlewareEvents):
    """Every tracked event with the staff member (`user`) and page (`url`) that caused it, for the console."""

    class Meta:
        proxy = True
        verbose_name = "audit event"
        verbose_name_plural = "audit trail"
