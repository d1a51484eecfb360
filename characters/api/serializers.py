import functools

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from characters import shapes
from characters.models import NAME_PATTERN, Character
from questdb.api.representation import iso
from questdb.text import full_match


@functools.cache  # one class per component, so the schema names each component once
def shape_field(column: str, *, partial: bool = False) -> type[serializers.JSONField]:
    """A JSON field documented by its column's schema in characters.shapes, as a named OpenAPI component."""
    schema = shapes.SCHEMAS[column]
    if partial:
        schema = {key: value for key, value in schema.items() if key != "required"}
    name = schema["title"] + ("Patch" if partial else "")
    field = type(f"{name}Field", (serializers.JSONField,), {})
    return extend_schema_field(schema, component_name=name)(field)


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
    stats = shape_field("stats")(read_only=True)
    inventory = shape_field("inventory")(read_only=True)
    skills = shape_field("skills")(read_only=True)
    looks = shape_field("looks")(read_only=True)
    position = shape_field("position")(read_only=True)
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


class StartingFields(serializers.Serializer):
    money = serializers.IntegerField(min_value=0, max_value=2**63 - 1, required=False)
    stats = shape_field("stats")(required=False)
    inventory = shape_field("inventory")(required=False)
    skills = shape_field("skills")(required=False)
    looks = shape_field("looks")(required=False)
    position = shape_field("position")(required=False)


class CharacterCreateRequest(StartingFields):
    user = serializers.UUIDField()
    name = serializers.RegexField(full_match(NAME_PATTERN), min_length=3, max_length=16)


class CharacterUpdateRequest(StartingFields):
    """Any subset; object fields merge into the current value (any of their keys may be left out), lists replace."""

    stats = shape_field("stats", partial=True)(required=False)
    looks = shape_field("looks", partial=True)(required=False)
    position = shape_field("position", partial=True)(required=False)
    is_active = serializers.BooleanField(required=False)
