from django.db import DEFAULT_DB_ALIAS
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from accounts.models import User
from sessions_app.keys import invalidate_sessions
from sessions_app.models import Session


@receiver(post_save, sender=Session)
@receiver(post_delete, sender=Session)
def session_changed(sender, instance: Session, **kwargs) -> None:
    invalidate_sessions([instance])


@receiver(post_save, sender=User)
def user_changed(sender, instance: User, **kwargs) -> None:
    # Session payloads embed the user, so they go stale with it.
    # From the primary: a replica may not have the sessions this write must reach yet.
    invalidate_sessions(Session.objects.using(DEFAULT_DB_ALIAS).filter(user_id=instance.pk).only("id", "token"))
