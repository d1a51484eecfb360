from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from characters.keys import invalidate_character
from characters.models import Character


@receiver(post_save, sender=Character)
@receiver(post_delete, sender=Character)
def character_changed(sender, instance: Character, **kwargs) -> None:
    invalidate_character(instance)
