from characters.models import Character
from questdb.errors import InvalidInput, NotFound
from questdb.identifiers import parse_uuid


def character_not_found() -> NotFound:
    return NotFound("No character with this id.", code="character_not_found")


def character_get(*, character_id) -> Character:
    character_uuid = parse_uuid(character_id)
    character = Character.objects.existing().filter(id=character_uuid).first() if character_uuid else None
    if character is None:
        raise character_not_found()
    return character


def character_get_many(*, character_ids) -> list[Character]:
    """The existing characters among `character_ids` (in no particular order); malformed ids find nothing."""
    wanted = [uuid for uuid in map(parse_uuid, character_ids) if uuid]
    return list(Character.objects.existing().filter(id__in=wanted)) if wanted else []


def character_list(*, user_id=None):
    characters = Character.objects.existing()
    if user_id is not None:
        owner = parse_uuid(user_id)
        if owner is None:
            raise InvalidInput("user must be a user id.", code="invalid_user", field="user")
        characters = characters.owned_by(owner)
    return characters.order_by("created_at", "id")
