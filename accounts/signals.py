"""Every write path (API, admin, commands, cascades) reaches the cache through these receivers."""

from django.db.models.signals import post_delete, post_init, post_save
from django.dispatch import receiver

from accounts.keys import invalidate_user
from accounts.models import User


@receiver(post_init, sender=User)
def remember_loaded_identity(sender, instance: User, **kwargs) -> None:
    # A rename must also invalidate the entries under the old username and email.
    instance._loaded_identity = (instance.__dict__.get("username"), instance.__dict__.get("email"))
    # Staff may keep a role the identity app wrote, but only give roles questdb knows (User.clean).
    instance._loaded_role = instance.__dict__.get("role")


@receiver(post_save, sender=User)
@receiver(post_delete, sender=User)
def user_changed(sender, instance: User, **kwargs) -> None:
    # On delete, its characters and sessions go with the cascade, each with its own signal.
    invalidate_user(instance)
