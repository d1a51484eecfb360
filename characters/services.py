"""Character rules: naming, the per-user limit, updates, scheduled deletion, restore and purge."""

import functools
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, transaction
from django.db.models import CharField, DateTimeField, PositiveSmallIntegerField, UUIDField, Value
from django.utils import timezone

from accounts.models import User
from characters import shapes
from characters.keys import invalidate_character
from characters.models import NAME_PATTERN, NAME_RULE, Character
from characters.selectors import character_not_found
from questdb.db.compiled import Compiled, row_converter
from questdb.errors import (
    Conflict,
    InvalidInput,
    PreconditionFailed,
    violated_constraint,
)
from questdb.identifiers import parse_uuid
from questdb.text import full_match

NAME_TAKEN = "name_taken"
CHARACTER_LIMIT_REACHED = "character_limit_reached"
PENDING_DELETION = "pending_deletion"
NOT_PENDING_DELETION = "not_pending_deletion"
READ_ONLY_FIELD = "read_only_field"
UNKNOWN_FIELD = "unknown_field"

UPDATABLE_FIELDS = ("money", "stats", "inventory", "skills", "looks", "position", "is_active")
STARTING_FIELDS = ("money", "stats", "inventory", "skills", "looks", "position")
READ_ONLY_FIELDS = ("id", "user", "name", "created_at", "updated_at", "deleted_at", "purge_at", "seconds_until_purge")
MAX_MONEY = 2**63 - 1
_NAME = full_match(NAME_PATTERN)


def validate_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInput(f"name: {NAME_RULE}", code="invalid_name", field="name")
    return name


def _validate_money(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput("money must be an integer.", code="invalid_money", field="money")
    if not 0 <= value <= MAX_MONEY:
        raise InvalidInput("money must be between 0 and 2^63-1.", code="invalid_money", field="money")
    return value


def _validate_is_active(value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput("is_active must be true or false.", code="invalid_is_active", field="is_active")
    return value


def validate_fields(data: dict, *, allowed: tuple[str, ...], current: Character | None = None) -> dict:
    """Check and normalize character fields; object-shaped fields merge into `current` when given.

    Every problem is reported at once: the error raised is the first, with all of them in `errors`.
    """
    problems: list[InvalidInput] = []
    for field in data:
        if field in READ_ONLY_FIELDS:
            problems.append(InvalidInput(f"{field} cannot be changed here.", code=READ_ONLY_FIELD, field=field))
        elif field not in allowed:
            problems.append(InvalidInput(f"Unknown field {field}.", code=UNKNOWN_FIELD, field=field))
    clean = {}
    for field, value in data.items():
        if field not in allowed or field in READ_ONLY_FIELDS:
            continue
        try:
            if field == "money":
                clean[field] = _validate_money(value)
            elif field == "is_active":
                clean[field] = _validate_is_active(value)
            elif field in shapes.SCHEMAS:
                clean[field] = shapes.validate(field, value, base=getattr(current, field, None))
        except InvalidInput as error:
            problems.append(error)
        except shapes.ShapeError as error:
            problems.extend(InvalidInput(m, code=f"invalid_{field}", field=field) for m in error.messages)
    if problems:
        raise InvalidInput.combine(problems)
    return clean


def _existing(characters, character_id) -> Character:
    character = characters.filter(id=parse_uuid(character_id)).first()
    if character is None or character.is_past_purge():
        raise character_not_found()
    return character


def _locked(character_id) -> Character:
    return _existing(Character.objects.select_for_update(), character_id)


class _SlotTaken(Exception):
    """Another create took the chosen slot first."""


def _limit_reached() -> Conflict:
    return Conflict(
        f"A user may have at most {settings.MAX_CHARACTERS_PER_USER} characters.", code=CHARACTER_LIMIT_REACHED
    )


def character_create(*, user_id: Any, name: Any, **starting: Any) -> Character:
    """Create a character in its owner's lowest free slot.

    Usually one query and one INSERT, outside any transaction: the query reads the owner, the
    owner's characters and whoever holds the name; the INSERT takes a free slot under the
    (user_id, slot) and name unique indexes, which settle concurrent creates. A create that
    loses the race for a slot looks again; each loss means another create took a slot, so
    this ends within the limit's number of tries.
    """
    name = validate_name(name)
    fields = validate_fields(starting, allowed=STARTING_FIELDS)
    owner_id = parse_uuid(user_id)
    if owner_id is None:
        raise InvalidInput("user must be a user id.", code="invalid_user", field="user")
    for _attempt in range(settings.MAX_CHARACTERS_PER_USER + 1):
        try:
            return _create_in_free_slot(owner_id=owner_id, name=name, fields=fields)
        except _SlotTaken:
            continue
    raise _limit_reached()


def _create_in_free_slot(*, owner_id, name: str, fields: dict) -> Character:
    rows, owner_exists = _owner_and_name_holders(owner_id=owner_id, name=name)
    if not owner_exists:
        raise InvalidInput("No user with this id.", code="user_not_found", field="user")
    limit, now = settings.MAX_CHARACTERS_PER_USER, timezone.now()
    mine = [row for row in rows if row["user_id"] == owner_id and not _lapsed(row, now)]
    if any(row["slot"] is None or row["slot"] >= limit for row in mine):
        # Characters outside the slots (written around this service, or a lowered limit): the index
        # alone cannot hold the limit for this owner, so serialize the owner's creates as before.
        with transaction.atomic():
            if not User.objects.select_for_update().filter(id=owner_id).exists():
                raise InvalidInput("No user with this id.", code="user_not_found", field="user")
            rows, _ = _owner_and_name_holders(owner_id=owner_id, name=name)
            return _insert_checked(owner_id=owner_id, name=name, fields=fields, rows=rows, now=timezone.now())
    return _insert_checked(owner_id=owner_id, name=name, fields=fields, rows=rows, now=now)


HOLDER_COLUMNS = ("id", "user_id", "name", "slot", "purge_at")


def _owner_and_name_holders(*, owner_id, name: str) -> tuple[list[dict], bool]:
    """One query: the owner's characters, whoever holds the name, and whether the owner exists."""
    sql, params = _HOLDERS.bind(owner_id=owner_id, name=name)
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute(sql, params)
        rows = [dict(zip(HOLDER_COLUMNS, _holder_row()(values), strict=True)) for values in cursor.fetchall()]
    return [row for row in rows if row["id"] is not None], any(row["id"] is None for row in rows)


def _holders_query(*, owner_id, name: str):
    characters = Character.objects.using(DEFAULT_DB_ALIAS).order_by()
    owner = (
        User.objects.using(DEFAULT_DB_ALIAS)
        .filter(id=owner_id)
        .order_by()
        .values_list(
            Value(None, output_field=UUIDField()),
            "id",
            Value(None, output_field=CharField()),
            Value(None, output_field=PositiveSmallIntegerField()),
            Value(None, output_field=DateTimeField()),
        )
    )
    found = characters.owned_by(owner_id).values_list(*HOLDER_COLUMNS)
    found = found.union(characters.named(name).values_list(*HOLDER_COLUMNS), owner)
    return found.query.sql_with_params()


# Compiled once (questdb.db.compiled): compiling this union was 38% of a create's CPU in a profile under load.
_HOLDERS = Compiled(
    _holders_query,
    owner_id=(uuid.UUID(int=2), Character._meta.get_field("user")),
    name=("\x01questdb name stand-in", Character._meta.get_field("name")),
)


@functools.cache
def _holder_row():
    return row_converter([Character._meta.get_field(column) for column in HOLDER_COLUMNS])


def _lapsed(row: dict, now) -> bool:
    return row["purge_at"] is not None and row["purge_at"] <= now


def _insert_checked(*, owner_id, name: str, fields: dict, rows: list[dict], now) -> Character:
    limit, wanted = settings.MAX_CHARACTERS_PER_USER, name.lower()
    mine = [row for row in rows if row["user_id"] == owner_id and not _lapsed(row, now)]
    if len(mine) >= limit:
        raise _limit_reached()
    if any(row["name"].lower() == wanted and not _lapsed(row, now) for row in rows):
        raise Conflict("This name is taken.", code=NAME_TAKEN, field="name")
    lapsed = [
        row["id"] for row in rows if _lapsed(row, now) and (row["user_id"] == owner_id or row["name"].lower() == wanted)
    ]
    if lapsed:
        # Past their purge time they are gone: free their names and slots now, not at the next purge.
        Character.objects.filter(id__in=lapsed).delete()
    slot = min(set(range(limit)) - {row["slot"] for row in mine})
    try:
        return _insert(user_id=owner_id, name=name, slot=slot, **fields)
    except IntegrityError as error:
        constraint = violated_constraint(error) or str(error)
        if "characters_user_slot_unique" in constraint:
            raise _SlotTaken() from None
        if "characters_name_ci_unique" in constraint:
            raise Conflict("This name is taken.", code=NAME_TAKEN, field="name") from None
        if "characters_user_id_fk" in constraint:  # the owner was deleted meanwhile
            raise InvalidInput("No user with this id.", code="user_not_found", field="user") from None
        raise


def _insert(**fields) -> Character:
    if connections[DEFAULT_DB_ALIAS].in_atomic_block:
        with transaction.atomic():  # a savepoint, so that a lost race leaves the outer transaction usable
            return Character.objects.create(**fields)
    return Character.objects.create(**fields)  # autocommit: one INSERT, no BEGIN/COMMIT


def etag_matches(if_match: str, etag: str) -> bool:
    candidates = [candidate.strip().removeprefix("W/") for candidate in if_match.split(",")]
    return "*" in candidates or etag in candidates


def character_update(
    *, character_id: Any, changes: dict, if_match: str | None = None, allowed: tuple[str, ...] = UPDATABLE_FIELDS
) -> Character:
    # Optimistic first: read from the primary, then one UPDATE in autocommit that applies only if
    # nobody changed the row meanwhile (no BEGIN/COMMIT round trips, no lock held across them).
    character = _existing(Character.objects.using(DEFAULT_DB_ALIAS), character_id)
    clean = _apply_changes(character, changes, if_match=if_match, allowed=allowed)
    if not clean or _save_if_unchanged(character, clean):
        return character
    # Somebody did change it: check and merge again against their version, under the row lock.
    with transaction.atomic():
        character = _locked(character_id)
        clean = _apply_changes(character, changes, if_match=if_match, allowed=allowed)
        if clean:
            character.save(update_fields=list(clean))
        return character


def _apply_changes(character: Character, changes: dict, *, if_match: str | None, allowed: tuple[str, ...]) -> dict:
    """Check `changes` against the character as read and apply them to it; the clean changes."""
    if if_match is not None and not etag_matches(if_match, character.etag()):
        raise PreconditionFailed()
    if character.is_pending_deletion:
        raise Conflict("The character is pending deletion; restore it first.", code=PENDING_DELETION)
    clean = validate_fields(changes, allowed=allowed, current=character)
    for field, value in clean.items():
        setattr(character, field, value)
    return clean


def _save_if_unchanged(character: Character, clean: dict) -> bool:
    """Write `clean` if the row still has the `updated_at` it was read with; False if it changed."""
    seen = character.updated_at
    # Strictly later than the version read, so the next writer's check sees the change even if the clock steps back.
    character.updated_at = max(timezone.now(), seen + timedelta(microseconds=1))
    unchanged = Character.objects.filter(id=character.id, updated_at=seen)
    written = unchanged.update(**clean, updated_at=character.updated_at)
    if written:
        invalidate_character(character)  # update() sends no post_save signal
    return bool(written)


def character_schedule_deletion(*, character_id: Any) -> Character:
    with transaction.atomic():
        character = _locked(character_id)
        if character.is_pending_deletion:
            return character  # idempotent: the first request's purge time stands
        now = timezone.now()
        character.deleted_at = now
        character.purge_at = now + timedelta(seconds=settings.CHARACTER_DELETE_GRACE)
        character.save(update_fields=["deleted_at", "purge_at"])
        return character


def character_restore(*, character_id: Any) -> Character:
    with transaction.atomic():
        character = _locked(character_id)
        if not character.is_pending_deletion:
            raise Conflict("The character is not pending deletion.", code=NOT_PENDING_DELETION)
        character.deleted_at = None
        character.purge_at = None
        character.save(update_fields=["deleted_at", "purge_at"])
        return character


def characters_purge_due(*, batch_size: int = 1000) -> int:
    """Delete for good every character whose purge time has passed; returns how many."""
    purged = 0
    while True:
        with transaction.atomic():
            ids = list(Character.objects.due_for_purge().values_list("id", flat=True)[:batch_size])
            if not ids:
                return purged
            # QuerySet.delete() sends post_delete per row, so each purge reaches the cache.
            purged += Character.objects.filter(id__in=ids).delete()[1].get(Character._meta.label, 0)


def character_purge(*, character_id: Any) -> None:
    """Delete a character for good now, without waiting for its purge time (a staff decision)."""
    with transaction.atomic():
        character = _locked(character_id)
        character.delete()  # post_delete reaches the cache
