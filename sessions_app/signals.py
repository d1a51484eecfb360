from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from sessions_app.caching import invalidate_sessions
from sessions_app.models import Session


@receiver(post_save, sender=Session)
@receiver(post_delete, sender=Session)
def session_changed(sender, instance: Session, **kwargs) -> None:
    invalidate_sessions([instance])
