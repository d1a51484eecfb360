"""The admin is no oracle for secrets, keeps key hashes out of URLs, and throttles sign-ins."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from questdb.models import ServiceAPIKey
from sessions_app.models import Session

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-staff-password"


@pytest.fixture
def staff(client):
    admin = get_user_model().objects.create_superuser("ops", "ops@example.com", PASSWORD)
    client.force_login(admin)
    return client


@pytest.fixture
def session(make_user):
    return Session.objects.create(
        user=make_user(), token="secret-token-abc", expires_at=timezone.now() + timedelta(hours=1)
    )


@pytest.mark.parametrize(
    "query",
    [
        "token__startswith=secret",
        "token__regex=^s",
        "token__contains=abc",
        "token=secret-token-abc",
        "token__exact=secret-token-abc",
        "user__sessions__token__startswith=s",
        "ip_address__startswith=1",
    ],
)
def test_the_session_changelist_refuses_lookups_on_what_it_does_not_offer(staff, session, query):
    response = staff.get(f"{reverse('admin:sessions_app_session_changelist')}?{query}")
    assert response.status_code == 400
    assert b"secret-token" not in response.content


@pytest.mark.parametrize(
    ("changelist", "query"),
    [
        ("admin:questdb_serviceapikey_changelist", "hashed_key__startswith=a"),
        ("admin:questdb_serviceapikey_changelist", "id__startswith=a"),
        ("admin:accounts_user_changelist", "sessions__token__startswith=s"),
        ("admin:characters_character_changelist", "user__sessions__token__startswith=s"),
    ],
)
def test_no_changelist_filters_on_a_secret_column(staff, session, write_key, changelist, query):
    assert staff.get(f"{reverse(changelist)}?{query}").status_code == 400


@pytest.mark.parametrize(
    ("changelist", "query"),
    [
        ("admin:sessions_app_session_changelist", "state=live"),
        ("admin:questdb_serviceapikey_changelist", "scope__exact=read"),
        ("admin:accounts_user_changelist", "role__exact=gm"),
        ("admin:characters_character_changelist", "status=pending_deletion&playable=yes"),
    ],
)
def test_the_offered_filters_still_work(staff, session, changelist, query):
    assert staff.get(f"{reverse(changelist)}?{query}").status_code == 200


def test_api_keys_are_addressed_by_their_prefix_not_their_hash(staff, api):
    api_key, key = ServiceAPIKey.objects.create_key(name="world-server", scope="read")
    assert api_key.pk == api_key.prefix == key.partition(".")[0]
    listing = staff.get(reverse("admin:questdb_serviceapikey_changelist")).content.decode()
    assert api_key.hashed_key not in listing
    change_url = reverse("admin:questdb_serviceapikey_change", args=[api_key.prefix])
    assert change_url in listing
    page = staff.get(change_url)
    assert page.status_code == 200
    assert api_key.hashed_key not in page.content.decode()
    api.defaults["HTTP_AUTHORIZATION"] = f"Api-Key {key}"
    assert api.get("/api/v1/users/").status_code == 200  # the key still works


def test_an_admin_sign_in_is_locked_out_after_repeated_failures_until_staff_reset_it(client):
    get_user_model().objects.create_superuser("ops", "ops@example.com", PASSWORD)
    login = reverse("admin:login")
    for _ in range(30):
        assert client.post(login, {"username": "ops", "password": "wrong"}).status_code in (200, 429)
    locked = client.post(login, {"username": "ops", "password": PASSWORD})
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session
    call_command("axes_reset", verbosity=0)
    assert client.post(login, {"username": "ops", "password": PASSWORD}).status_code == 302
