"""The audit trail: every staff change and action, with who, when and each field's before and after."""

import json
import re
from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from pghistory.models import MiddlewareEvents
from rest_framework_api_key.models import APIKey

from characters import shapes
from characters.models import Character
from questdb.models import ServiceAPIKey
from sessions_app.models import Session

pytestmark = pytest.mark.django_db
TRAIL = "admin:audit_auditevent_changelist"


@pytest.fixture
def staff_user(db):
    return get_user_model().objects.create_superuser("lead", "lead@example.com", "a-long-staff-password")


@pytest.fixture
def staff(client, staff_user):
    client.force_login(staff_user)
    return client


def _events(obj):
    return MiddlewareEvents.objects.tracks(obj).order_by("pgh_created_at", "pgh_id")


def test_a_staff_edit_is_recorded_with_the_staff_member_and_before_and_after(staff, staff_user, make_user):
    character = Character.objects.create(user=make_user(), name="Knight")
    form = {
        "money": "500",
        "stats": json.dumps({**shapes.default_stats(), "level": 7}),
        "inventory": "[]",
        "skills": "[]",
        "looks": json.dumps(shapes.default_looks()),
        "position": json.dumps(shapes.default_position()),
        "is_active": "on",
    }
    assert staff.post(reverse("admin:characters_character_change", args=[character.pk]), form).status_code == 302
    update = _events(character).last()
    assert update.pgh_label == "update"
    assert update.user == staff_user
    assert update.pgh_diff["money"] == [0, 500]
    assert update.pgh_diff["stats"][0]["level"] == 1
    assert update.pgh_diff["stats"][1]["level"] == 7


def test_scheduling_deletion_and_restoring_appear_with_the_actor_and_action(staff, staff_user, make_user):
    character = Character.objects.create(user=make_user(), name="Knight")
    staff.post(reverse("admin:character_delete", args=[character.pk]), {"confirmed": "yes"})
    staff.post(reverse("admin:character_restore", args=[character.pk]))
    actions = [(e.pgh_context["action"], e.user) for e in _events(character) if e.pgh_context]
    assert actions == [("schedule_deletion", staff_user), ("restore", staff_user)]
    page = staff.get(reverse(TRAIL) + f"?obj=characters.character:{character.pk}&method=tracks").content.decode()
    assert "schedule_deletion" in page
    assert "restore" in page
    assert "lead" in page
    # Django's own History page tells the same story.
    history = staff.get(reverse("admin:characters_character_history", args=[character.pk])).content.decode()
    assert "Scheduled deletion" in history
    assert "Restored." in history


def test_writes_outside_the_console_are_recorded_without_a_staff_member(make_user):
    character = Character.objects.create(user=make_user(), name="Knight")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE characters SET money = 42 WHERE id = %s", [character.pk])
    event = _events(character).last()
    assert event.pgh_diff["money"] == [0, 42]
    assert event.user is None


def test_the_trail_filters_by_staff_member(staff, staff_user, client, make_user):
    character = Character.objects.create(user=make_user(), name="Knight")
    staff.post(reverse("admin:character_delete", args=[character.pk]), {"confirmed": "yes"})
    other = get_user_model().objects.create_superuser("other", "other@example.com", "a-long-staff-password")
    mine = staff.get(reverse(TRAIL) + f"?staff={staff_user.pk}").content.decode()
    theirs = staff.get(reverse(TRAIL) + f"?staff={other.pk}").content.decode()
    assert "schedule_deletion" in mine
    assert "schedule_deletion" not in theirs


def test_expiring_and_signing_out_sessions_are_recorded_without_the_token(staff, staff_user, make_user):
    owner = make_user(username="Owner")
    live = timezone.now() + timedelta(hours=1)
    first = Session.objects.create(user=owner, token="secret-one", expires_at=live)
    Session.objects.create(user=owner, token="secret-two", expires_at=live)
    url = reverse("admin:sessions_app_session_changelist")
    staff.post(url, {"action": "expire_now", "_selected_action": [str(first.pk)], "confirmed": "yes"})
    assert Session.objects.get(pk=first.pk).is_expired()
    staff.post(reverse("admin:user_sign_out", args=[owner.pk]), {"confirmed": "yes"})
    assert not Session.objects.filter(user=owner).exists()
    events = MiddlewareEvents.objects.filter(pgh_obj_model="sessions_app.Session").order_by("pgh_id")
    assert [(e.pgh_label, e.pgh_context["action"], e.user) for e in events] == [
        ("expire", "expire_sessions", staff_user),
        ("sign_out", "sign_out_everywhere", staff_user),
        ("sign_out", "sign_out_everywhere", staff_user),
    ]
    assert all("token" not in e.pgh_data for e in events)
    page = staff.get(reverse(TRAIL)).content.decode()
    assert "secret-one" not in page
    assert "secret-two" not in page


def test_an_api_key_needs_an_explicit_scope_and_is_shown_once(staff):
    add = reverse("admin:questdb_serviceapikey_add")
    refused = staff.post(add, {"name": "world-server"})
    assert refused.status_code == 200
    assert not ServiceAPIKey.objects.exists()
    created = staff.post(add, {"name": "world-server", "scope": "read"}, follow=True)
    key = ServiceAPIKey.objects.get()
    shown = [m.message for m in created.context["messages"]]
    full_key = re.search(r"is: (\S+)\.", shown[0]).group(1)
    assert ServiceAPIKey.objects.get_from_key(full_key) == key
    change = staff.get(reverse("admin:questdb_serviceapikey_change", args=[key.pk])).content.decode()
    assert full_key not in change
    assert key.hashed_key not in change
    assert not admin.site.is_registered(APIKey)  # one API keys section, the one the API accepts


def test_the_dashboard_shows_replicas_cache_purges_and_recent_staff_changes(staff, make_user):
    character = Character.objects.create(user=make_user(), name="Knight")
    staff.post(reverse("admin:character_delete", args=[character.pk]), {"confirmed": "yes"})
    page = staff.get(reverse("admin:index")).content.decode()
    assert "questdb staff console" in page
    for section in ("dashboard-replicas", "dashboard-cache", "dashboard-purges", "dashboard-recent"):
        assert section in page
    assert "1 character(s) pending deletion" in page
    assert "schedule_deletion" in page
    assert 'href="/api/docs/"' in page  # "View site"
