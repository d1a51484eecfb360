"""Every write path (API, admin, commands, cascades) reaches the cache through these receivers."""

from django.db.models.signals import post_delete, post_init, post_save
from django.dispatch import receiver

from accounts.caching import invalidate_user, user_keys
from accounts.models import User
from questdb.cache import lookup_cache


@receiver(post_init, sender=User)
def remember_loaded_identity(sender, instance: User, **kwargs) -> None:
    # A rename must also invalidate the entries under the old username and email.
    instance._loaded_identity = (instance.__dict__.get("username"), instance.__dict__.get("email"))


@receiver(post_save, sender=User)
def user_saved(sender, instance: User, **kwargs) -> None:
    invalidate_user(instance)


@receiver(post_delete, sender=User)
def user_deleted(sender, instance: User, **kwargs) -> None:
    # Its characters and sessions are deleted by the cascade, each with its own signal.
    loaded_username, loaded_email = getattr(instance, "_loaded_identity", (None, None))
    lookup_cache.invalidate(
        user_keys(
            user_id=instance.pk,
            usernames={instance.username, loaded_username},
            emails={instance.email, loaded_email},
        )
    )
