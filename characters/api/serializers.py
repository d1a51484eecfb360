from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from characters.models import NAME_PATTERN, Character
from questdb.api.representation import iso
from questdb.text import full_match

CHARACTER_FIELDS = [
    "id",
    "user",
    "name",
    "money",
    "stats",
    "inventory",
    "skills",
    "looks",
    "position",
    "is_active",
    "created_at",
    "updated_at",
    "deleted_at",
    "purge_at",
    "seconds_until_purge",
]


class CharacterSerializer(serializers.ModelSerializer):
    """The representation. Input is checked by characters.services, not here."""

    user = serializers.UUIDField(source="user_id", read_only=True)
    seconds_until_purge = serializers.SerializerMethodField()

    class Meta:
        model = Character
        fields = CHARACTER_FIELDS
        read_only_fields = CHARACTER_FIELDS

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_seconds_until_purge(self, character: Character) -> int | None:
        return character.seconds_until_purge(timezone.now())

    def to_representation(self, character: Character) -> dict:
        return {
            "id": str(character.id),
            "user": str(character.user_id),
            "name": character.name,
            "money": character.money,
            "stats": character.stats,
            "inventory": character.inventory,
            "skills": character.skills,
            "looks": character.looks,
            "position": character.position,
            "is_active": character.is_active,
            "created_at": iso(character.created_at),
            "updated_at": iso(character.updated_at),
            "deleted_at": iso(character.deleted_at),
            "purge_at": iso(character.purge_at),
            "seconds_until_purge": self.get_seconds_until_purge(character),
        }


# Documentation-only shapes of the request bodies (the services validate them).
class Stats(serializers.Serializer):
    level = serializers.IntegerField(min_value=0)
    experience = serializers.IntegerField(min_value=0)
    strength = serializers.IntegerField(min_value=0)
    dexterity = serializers.IntegerField(min_value=0)
    intelligence = serializers.IntegerField(min_value=0)
    vitality = serializers.IntegerField(min_value=0)
    hp = serializers.IntegerField(min_value=0)
    mp = serializers.IntegerField(min_value=0)


class Looks(serializers.Serializer):
    race = serializers.IntegerField(min_value=0)
    gender = serializers.IntegerField(min_value=0)
    face = serializers.IntegerField(min_value=0)
    hair = serializers.IntegerField(min_value=0)


class Position(serializers.Serializer):
    map_id = serializers.IntegerField(min_value=0)
    x = serializers.FloatField()
    y = serializers.FloatField()
    z = serializers.FloatField()


class InventoryItem(serializers.Serializer):
    slot = serializers.IntegerField(min_value=0)
    item_id = serializers.IntegerField(min_value=0)
    quantity = serializers.IntegerField(min_value=0)


class Skill(serializers.Serializer):
    skill_id = serializers.IntegerField(min_value=0)
    level = serializers.IntegerField(min_value=0)


class StartingFields(serializers.Serializer):
    money = serializers.IntegerField(min_value=0, max_value=2**63 - 1, required=False)
    stats = Stats(required=False)
    inventory = InventoryItem(many=True, required=False)
    skills = Skill(many=True, required=False)
    looks = Looks(required=False)
    position = Position(required=False)


class CharacterCreateRequest(StartingFields):
    user = serializers.UUIDField()
    name = serializers.RegexField(full_match(NAME_PATTERN), min_length=3, max_length=16)


class CharacterUpdateRequest(StartingFields):
    """Any subset; object fields merge into the current value, lists replace it."""

    is_active = serializers.BooleanField(required=False)
