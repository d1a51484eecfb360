from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from characters import services
from characters.models import Character
from questdb.errors import Conflict, InvalidInput, NotFound, PreconditionFailed

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("name", ["ab", "1hero", "has space", "x" * 17, "dash-y", "", None, 42, "ñame"])
def test_invalid_names_are_rejected_naming_the_field(make_user, name):
    with pytest.raises(InvalidInput) as refused:
        services.character_create(user_id=make_user().id, name=name)
    assert refused.value.field == "name"


@pytest.mark.parametrize("name", ["Hero", "_under", "abc", "A23456789012345x"])
def test_valid_names_are_accepted(make_user, name):
    assert services.character_create(user_id=make_user().id, name=name).name == name


def test_second_character_with_same_name_in_other_case_is_rejected(make_user):
    services.character_create(user_id=make_user().id, name="Hero")
    with pytest.raises(Conflict) as refused:
        services.character_create(user_id=make_user().id, name="HERO")
    assert refused.value.code == services.NAME_TAKEN


def test_a_user_cannot_exceed_the_character_limit(make_user, settings):
    settings.MAX_CHARACTERS_PER_USER = 2
    owner = make_user()
    services.character_create(user_id=owner.id, name="One")
    services.character_create(user_id=owner.id, name="Two")
    with pytest.raises(Conflict) as refused:
        services.character_create(user_id=owner.id, name="Three")
    assert refused.value.code == services.CHARACTER_LIMIT_REACHED
    assert Character.objects.owned_by(owner.id).count() == 2


def test_new_characters_start_with_the_documented_values(make_user):
    character = services.character_create(user_id=make_user().id, name="Fresh")
    assert character.stats["level"] == 1
    assert character.stats["hp"] == 100
    assert set(character.looks) == {"race", "gender", "face", "hair"}
    assert set(character.position) == {"map_id", "x", "y", "z"}
    assert (character.money, character.inventory, character.skills, character.is_active) == (0, [], [], True)


def test_update_merges_partial_objects_and_keeps_the_rest(make_user):
    character = services.character_create(user_id=make_user().id, name="Grower")
    updated = services.character_update(character_id=character.id, changes={"stats": {"level": 7}, "money": 5})
    assert updated.stats["level"] == 7
    assert updated.stats["strength"] == 10
    assert updated.money == 5


@pytest.mark.parametrize(
    "changes",
    [
        {"money": -1},
        {"money": "10"},
        {"money": True},
        {"stats": {"level": -2}},
        {"stats": {"luck": 3}},
        {"stats": []},
        {"position": {"x": "far"}},
        {"inventory": [{"slot": 0, "item_id": 1}]},
        {"inventory": [{"slot": 0, "item_id": 1, "quantity": 1}, {"slot": 0, "item_id": 2, "quantity": 1}]},
        {"skills": {"skill_id": 1}},
        {"is_active": "yes"},
        {"name": "Renamed"},
        {"user": "00000000-0000-0000-0000-000000000000"},
        {"unknown": 1},
    ],
)
def test_bad_updates_are_refused_and_change_nothing(make_user, changes):
    character = services.character_create(user_id=make_user().id, name="Steady")
    before = Character.objects.get(id=character.id)
    with pytest.raises(InvalidInput) as refused:
        services.character_update(character_id=character.id, changes=changes)
    assert refused.value.field == next(iter(changes))
    after = Character.objects.get(id=character.id)
    assert (after.money, after.stats, after.inventory, after.updated_at) == (
        before.money,
        before.stats,
        before.inventory,
        before.updated_at,
    )


def test_a_stale_etag_is_refused(make_user):
    character = services.character_create(user_id=make_user().id, name="Tagged")
    stale = character.etag()
    services.character_update(character_id=character.id, changes={"money": 1})
    with pytest.raises(PreconditionFailed):
        services.character_update(character_id=character.id, changes={"money": 2}, if_match=stale)
    assert Character.objects.get(id=character.id).money == 1


def test_deletion_is_scheduled_idempotently_and_can_be_restored(make_user, settings):
    settings.CHARACTER_DELETE_GRACE = 3600
    character = services.character_create(user_id=make_user().id, name="Leaver")
    first = services.character_schedule_deletion(character_id=character.id)
    again = services.character_schedule_deletion(character_id=character.id)
    assert first.purge_at == again.purge_at
    assert first.purge_at - first.deleted_at == timedelta(hours=1)
    with pytest.raises(Conflict) as refused:
        services.character_update(character_id=character.id, changes={"money": 1})
    assert refused.value.code == services.PENDING_DELETION
    restored = services.character_restore(character_id=character.id)
    assert restored.deleted_at is None
    assert restored.purge_at is None
    with pytest.raises(Conflict) as refused:
        services.character_restore(character_id=character.id)
    assert refused.value.code == services.NOT_PENDING_DELETION


def test_purge_removes_only_characters_past_their_grace_and_frees_their_names(make_user, capsys):
    owner = make_user()
    due = services.character_create(user_id=owner.id, name="Gone")
    waiting = services.character_create(user_id=owner.id, name="Waiting")
    services.character_schedule_deletion(character_id=due.id)
    services.character_schedule_deletion(character_id=waiting.id)
    Character.objects.filter(id=due.id).update(purge_at=timezone.now() - timedelta(seconds=1))
    call_command("purge_characters")
    assert "Purged 1 character(s)." in capsys.readouterr().out
    assert set(Character.objects.values_list("name", flat=True)) == {"Waiting"}
    assert services.character_create(user_id=owner.id, name="gone").name == "gone"


def test_a_character_past_its_purge_time_is_gone_even_before_the_purge_runs(make_user):
    character = services.character_create(user_id=make_user().id, name="Lapsed")
    services.character_schedule_deletion(character_id=character.id)
    Character.objects.filter(id=character.id).update(purge_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(NotFound):
        services.character_restore(character_id=character.id)
    assert services.character_create(user_id=make_user().id, name="LAPSED").name == "LAPSED"


def test_unknown_or_malformed_owner_is_an_input_error_on_the_user_field():
    for user_id in ("not-a-uuid", "00000000-0000-0000-0000-000000000000", None):
        with pytest.raises(InvalidInput) as refused:
            services.character_create(user_id=user_id, name="Nobody")
        assert refused.value.field == "user"


def test_an_update_racing_another_keeps_both_changes(make_user, monkeypatch):
    character = services.character_create(user_id=make_user().id, name="Raced")
    apply_changes = services._apply_changes
    raced = []

    def with_a_rival_in_between(target, changes, **kwargs):
        if not raced:  # between this update's read and its write, another update lands
            raced.append(target.id)
            raced.append(services.character_update(character_id=target.id, changes={"stats": {"strength": 42}}))
        return apply_changes(target, changes, **kwargs)

    monkeypatch.setattr(services, "_apply_changes", with_a_rival_in_between)
    updated = services.character_update(character_id=character.id, changes={"stats": {"level": 9}})
    assert (updated.stats["level"], updated.stats["strength"]) == (9, 42)
    stored = Character.objects.get(id=character.id)
    assert (stored.stats, stored.updated_at) == (updated.stats, updated.updated_at)
    assert stored.updated_at > raced[1].updated_at


def test_a_stale_etag_is_refused_even_when_the_change_lands_during_the_update(make_user, monkeypatch):
    character = services.character_create(user_id=make_user().id, name="Tagged2")
    etag = character.etag()
    apply_changes = services._apply_changes
    calls = []

    def with_a_rival_in_between(target, changes, **kwargs):
        calls.append(target.etag())
        if len(calls) == 1:
            services.character_update(character_id=target.id, changes={"money": 7})
        return apply_changes(target, changes, **kwargs)

    monkeypatch.setattr(services, "_apply_changes", with_a_rival_in_between)
    with pytest.raises(PreconditionFailed):
        services.character_update(character_id=character.id, changes={"money": 1}, if_match=etag)
    assert Character.objects.get(id=character.id).money == 7


def test_creates_take_the_owners_lowest_free_slot(make_user, settings):
    settings.MAX_CHARACTERS_PER_USER = 3
    owner = make_user()
    first, second, third = (services.character_create(user_id=owner.id, name=f"Slot{n}") for n in range(3))
    assert [first.slot, second.slot, third.slot] == [0, 1, 2]
    Character.objects.filter(id=second.id).delete()
    assert services.character_create(user_id=owner.id, name="Refill").slot == 1


def test_a_character_pending_deletion_keeps_its_slot_until_its_purge_time(make_user, settings):
    settings.MAX_CHARACTERS_PER_USER = 2
    owner = make_user()
    services.character_create(user_id=owner.id, name="Keeper")
    leaving = services.character_create(user_id=owner.id, name="Leaving")
    services.character_schedule_deletion(character_id=leaving.id)
    with pytest.raises(Conflict) as refused:
        services.character_create(user_id=owner.id, name="Third")
    assert refused.value.code == services.CHARACTER_LIMIT_REACHED
    Character.objects.filter(id=leaving.id).update(purge_at=timezone.now() - timedelta(seconds=1))
    # Past its purge time it is gone: its slot is free before the purge job runs.
    assert services.character_create(user_id=owner.id, name="Third").slot == leaving.slot
    assert not Character.objects.filter(id=leaving.id).exists()


def test_the_limit_holds_for_owners_with_characters_outside_the_slots(make_user, settings):
    owner = make_user()
    Character.objects.create(user=owner, name="Unslotted")  # written around the service: no slot
    Character.objects.create(user=owner, name="HighSlot", slot=7)  # from a time of a higher limit
    settings.MAX_CHARACTERS_PER_USER = 3
    assert services.character_create(user_id=owner.id, name="Third").slot == 0
    with pytest.raises(Conflict) as refused:
        services.character_create(user_id=owner.id, name="Fourth")
    assert refused.value.code == services.CHARACTER_LIMIT_REACHED


def test_two_characters_of_one_owner_cannot_share_a_slot_in_the_database(make_user):
    owner = make_user()
    Character.objects.create(user=owner, name="First", slot=0)
    with pytest.raises(IntegrityError), transaction.atomic():
        Character.objects.create(user=owner, name="Second", slot=0)
    assert Character.objects.create(user=make_user(), name="Other", slot=0).slot == 0


def test_a_create_that_loses_the_race_for_a_slot_takes_the_next_one(make_user, monkeypatch):
    owner = make_user()
    insert = services._insert
    rivals = []

    def with_a_rival_in_between(**fields):
        if not rivals:  # between this create's read and its INSERT, another create takes the slot
            rivals.append(insert(user_id=owner.id, name="Rival", slot=fields["slot"]))
        return insert(**fields)

    monkeypatch.setattr(services, "_insert", with_a_rival_in_between)
    created = services.character_create(user_id=owner.id, name="Loser")
    assert (rivals[0].slot, created.slot) == (0, 1)


def test_the_slot_migration_numbers_existing_characters_oldest_first(make_user, django_db_blocker):
    owners = [make_user(), make_user()]
    with django_db_blocker.unblock():
        # Migrating characters back unapplies the audit app, whose triggers would then write to missing tables.
        call_command("pgtrigger", "uninstall", verbosity=0)
        call_command("migrate", "characters", "0001", verbosity=0)
        with connection.cursor() as cursor:
            for index, (owner, age) in enumerate([(0, 3), (1, 9), (0, 1), (0, 2)]):
                cursor.execute(
                    "INSERT INTO characters (user_id, name, stats, inventory, skills, looks, position, created_at)"
                    " VALUES (%s, %s, '{}', '[]', '[]', '{}', '{}', now() - make_interval(hours => %s))",
                    [owners[owner].id, f"Old{index}", age],
                )
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no pending foreign-key checks under ALTER TABLE
        call_command("migrate", verbosity=0)
        call_command("pgtrigger", "install", verbosity=0)
    slots = dict(Character.objects.values_list("name", "slot"))
    assert slots == {"Old0": 0, "Old3": 1, "Old2": 2, "Old1": 0}
