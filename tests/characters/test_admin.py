"""The staff console's character pages: saves the domain refuses, scheduled deletion, restore, purge."""

import json
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from characters import shapes
from characters.models import Character

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner(make_user):
    return make_user(username="Owner")


def _form(character=None, **overrides) -> dict:
    form = {
        "money": "100",
        "stats": json.dumps(shapes.default_stats()),
        "inventory": "[]",
        "skills": "[]",
        "looks": json.dumps(shapes.default_looks()),
        "position": json.dumps(shapes.default_position()),
        "is_active": "on",
    }
    return {**form, **overrides}


def _change_url(character) -> str:
    return reverse("admin:characters_character_change", args=[character.pk])


def _success_messages(response) -> list[str]:
    return [m.message for m in response.context["messages"] if m.level_tag == "success"]


def test_a_save_refused_for_a_pending_character_is_reported_logs_nothing_and_says_no_success(staff, owner):
    character = Character.objects.create(user=owner, name="Mordain")
    Character.objects.filter(pk=character.pk).update(
        deleted_at=timezone.now(), purge_at=timezone.now() + timedelta(days=1)
    )
    response = staff.post(_change_url(character), _form(money="999"))
    assert response.status_code == 200
    assert "pending deletion; restore it first" in response.content.decode()
    assert not _success_messages(response)
    assert not LogEntry.objects.exists()
    assert Character.objects.get(pk=character.pk).money == 0


@override_settings(MAX_CHARACTERS_PER_USER=1)
def test_adding_past_the_character_limit_keeps_the_input_and_creates_nothing(staff, owner):
    Character.objects.create(user=owner, name="First")
    response = staff.post(reverse("admin:characters_character_add"), {**_form(), "user": owner.pk, "name": "Second"})
    assert response.status_code == 200
    page = response.content.decode()
    assert "at most 1 characters" in page
    assert 'value="Second"' in page  # the typed input is still there
    assert not _success_messages(response)
    assert not LogEntry.objects.exists()
    assert not Character.objects.filter(name="Second").exists()


def test_every_invalid_field_is_reported_at_once(staff, owner):
    character = Character.objects.create(user=owner, name="Knight")
    bad = _form(
        inventory=json.dumps([{"slot": 1, "item_id": 2, "quantity": -1}, {"slot": 1, "item_id": 3, "quantity": 1}]),
        position=json.dumps({"map_id": 1, "x": "far", "y": 0}),
        stats=json.dumps({"level": 3}),
    )
    response = staff.post(_change_url(character), bad)
    assert response.status_code == 200
    page = response.content.decode()
    for message in (
        "inventory[0].quantity must be a whole number",
        "inventory[1]: slot 1 is used twice.",
        "position is missing keys: z.",
        "position.x must be a number",
        "stats is missing keys: experience",  # a partial object is refused, not silently merged
    ):
        assert message in page
    assert Character.objects.get(pk=character.pk).stats == shapes.default_stats()


def test_a_taken_name_is_reported_in_plain_words(staff, owner, make_user):
    Character.objects.create(user=make_user(), name="Hero")
    response = staff.post(reverse("admin:characters_character_add"), {**_form(), "user": owner.pk, "name": "hERO"})
    page = response.content.decode()
    assert response.status_code == 200
    assert "This name is taken" in page
    assert "characters_name_ci_unique" not in page


def test_a_valid_save_reaches_the_api(staff, owner, api):
    character = Character.objects.create(user=owner, name="Knight")
    stats = {**shapes.default_stats(), "level": 33, "strength": 44}
    response = staff.post(_change_url(character), _form(stats=json.dumps(stats), money="1234567"))
    assert response.status_code == 302
    body = api.get(reverse("character-detail", args=[character.pk])).json()
    assert body["stats"]["level"] == 33
    assert body["money"] == 1234567


def test_the_editors_are_structured_by_default_and_raw_json_on_request(staff, owner):
    character = Character.objects.create(user=owner, name="Knight")
    structured = staff.get(_change_url(character)).content.decode()
    assert "django-jsonform" in structured or "data-django-jsonform" in structured
    assert '"title": "Stats"' in structured or "&quot;title&quot;: &quot;Stats&quot;" in structured
    raw = staff.get(_change_url(character) + "?raw=1").content.decode()
    assert "raw-json" in raw
    assert "&quot;strength&quot;: 10" in raw


def test_the_list_shows_owner_level_money_with_separators_and_time_left(staff, owner):
    character = Character.objects.create(user=owner, name="Rich", money=1234567, stats={**shapes.default_stats()})
    Character.objects.filter(pk=character.pk).update(
        deleted_at=timezone.now(), purge_at=timezone.now() + timedelta(hours=5, minutes=30)
    )
    page = staff.get(reverse("admin:characters_character_changelist")).content.decode()
    assert "1,234,567" in page
    assert reverse("admin:accounts_user_change", args=[owner.pk]) in page
    assert "Pending deletion — purged in 5h 29m" in page or "Pending deletion — purged in 5h 30m" in page
    assert "Created (UTC)" in page


def test_django_delete_is_replaced_by_scheduled_deletion_with_the_purge_time(staff, owner):
    character = Character.objects.create(user=owner, name="Knight")
    assert staff.get(reverse("admin:characters_character_delete", args=[character.pk])).status_code == 403
    url = reverse("admin:character_delete", args=[character.pk])
    confirmation = staff.get(url).content.decode()
    assert "deleted for good at" in confirmation
    assert "UTC" in confirmation
    assert Character.objects.get(pk=character.pk).deleted_at is None  # asking changes nothing
    assert staff.post(url, {"confirmed": "yes"}).status_code == 302
    character.refresh_from_db()
    assert character.purge_at > timezone.now() + timedelta(hours=23)


def test_a_pending_character_page_has_a_banner_and_a_restore_button_that_restores(staff, owner):
    character = Character.objects.create(user=owner, name="Knight")
    staff.post(reverse("admin:character_delete", args=[character.pk]), {"confirmed": "yes"})
    page = staff.get(_change_url(character)).content.decode()
    assert 'id="pending-deletion-banner"' in page
    assert 'id="restore-button"' in page
    assert 'name="_save"' not in page  # nothing to save while pending
    assert staff.post(reverse("admin:character_restore", args=[character.pk])).status_code == 302
    character.refresh_from_db()
    assert character.deleted_at is None


def test_purge_now_needs_its_own_permission_and_warns_it_cannot_be_undone(client, owner):
    character = Character.objects.create(user=owner, name="Knight")
    support = get_user_model().objects.create_user("support", "support@example.com", "a-long-staff-password")
    support.is_staff = True
    support.save()
    support.user_permissions.add(*Permission.objects.filter(codename__in=["view_character", "change_character"]))
    client.force_login(support)
    url = reverse("admin:character_purge", args=[character.pk])
    assert client.get(url).status_code == 403
    assert client.post(url, {"confirmed": "yes"}).status_code == 403
    assert Character.objects.filter(pk=character.pk).exists()

    support.user_permissions.add(Permission.objects.get(codename="delete_character"))
    client.force_login(get_user_model().objects.get(pk=support.pk))
    assert "This cannot be undone" in client.get(url).content.decode()
    assert client.post(url, {"confirmed": "yes"}).status_code == 302
    assert not Character.objects.filter(pk=character.pk).exists()
