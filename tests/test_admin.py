from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import SignInAccount, Verification
from characters.models import Character
from sessions_app.models import Session

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(make_user):
    owner = make_user(username="Owner", email="owner@example.com", name="Olivia")
    character = Character.objects.create(user=owner, name="Knight")
    session = Session.objects.create(user=owner, token="admin-secret", expires_at=timezone.now() + timedelta(hours=1))
    return owner, character, session


def _pages(world):
    owner, character, session = world
    return [
        reverse("admin:accounts_user_changelist"),
        reverse("admin:accounts_user_changelist") + "?q=owner@example.com",
        reverse("admin:accounts_user_changelist") + "?role__exact=gm",
        reverse("admin:accounts_user_change", args=[owner.id]),
        reverse("admin:accounts_user_add"),
        reverse("admin:characters_character_changelist"),
        reverse("admin:characters_character_changelist") + "?q=Owner",
        reverse("admin:characters_character_changelist") + "?status=pending_deletion",
        reverse("admin:characters_character_change", args=[character.id]),
        reverse("admin:characters_character_add"),
        reverse("admin:sessions_app_session_changelist"),
        reverse("admin:sessions_app_session_changelist") + "?q=Owner&state=live",
        reverse("admin:sessions_app_session_change", args=[session.id]),
        reverse("admin:questdb_serviceapikey_changelist"),
        reverse("admin:questdb_serviceapikey_add"),
        reverse("admin:index"),
        reverse("admin:audit_auditevent_changelist"),
        reverse("admin:character_delete", args=[character.id]),
        reverse("admin:user_sign_out", args=[owner.id]),
    ]


def test_every_admin_page_answers_200_for_staff(staff, world):
    for page in _pages(world):
        response = staff.get(page)
        assert response.status_code == 200, page


def test_anonymous_visitors_are_sent_to_the_login_page(client, world):
    for page in _pages(world):
        response = client.get(page)
        assert response.status_code == 302, page
        assert "/admin/login/" in response["Location"], page


def test_the_session_token_is_never_shown(staff, world):
    _, _, session = world
    _action(staff, "sessions_app_session", "expire_now", [session.id])  # so the audit trail has the session
    pages = [
        reverse("admin:sessions_app_session_change", args=[session.id]),
        reverse("admin:sessions_app_session_changelist"),
        reverse("admin:accounts_user_change", args=[session.user_id]),
        reverse("admin:audit_auditevent_changelist"),
        reverse("admin:audit_auditevent_changelist") + f"?obj=sessions_app.session:{session.id}&method=tracks",
    ]
    for page in pages:
        assert b"admin-secret" not in staff.get(page).content, page


def test_search_finds_characters_by_owner_username(staff, world):
    response = staff.get(reverse("admin:characters_character_changelist") + "?q=owner")
    assert b"Knight" in response.content


def _action(staff, model: str, action: str, ids) -> None:
    url = reverse(f"admin:{model}_changelist")
    form = {"action": action, "_selected_action": [str(i) for i in ids]}
    asked = staff.post(url, form)
    if asked.status_code == 200:  # a confirmation page first
        assert b"confirm-button" in asked.content
        asked = staff.post(url, {**form, "confirmed": "yes"})
    assert asked.status_code == 302


def test_schedule_deletion_and_restore_actions(staff, world):
    _, character, _ = world
    _action(staff, "characters_character", "schedule_deletion", [character.id])
    character.refresh_from_db()
    assert character.deleted_at is not None
    assert character.purge_at > timezone.now()
    _action(staff, "characters_character", "restore", [character.id])
    character.refresh_from_db()
    assert character.deleted_at is None
    assert character.purge_at is None


def test_expire_now_action(staff, world):
    _, _, session = world
    _action(staff, "sessions_app_session", "expire_now", [session.id])
    session.refresh_from_db()
    assert session.expires_at <= timezone.now()


def test_game_users_cannot_sign_in_to_the_admin(client, world):
    response = client.post(reverse("admin:login"), {"username": "Owner", "password": "anything"})
    assert response.status_code == 200
    assert b"errornote" in response.content


def test_createsuperuser_works_on_postgresql(client, monkeypatch):
    from django.core.management import call_command

    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "another-long-password")
    call_command("createsuperuser", interactive=False, username="ops", email="ops@example.com", verbosity=0)
    assert client.login(username="ops", password="another-long-password")
    assert client.get(reverse("admin:index")).status_code == 200


MANAGEMENT = {
    f"{inline}-{count}": value
    for inline in ("sign_in_accounts", "characters", "sessions")
    for count, value in [
        ("TOTAL_FORMS", "0"),
        ("INITIAL_FORMS", "0"),
        ("MIN_NUM_FORMS", "0"),
        ("MAX_NUM_FORMS", "1000"),
    ]
}


def _user_form(user, **changes) -> dict:
    form = {
        "username": user.username or "",
        "display_username": user.display_username or "",
        "name": user.name,
        "email": user.email,
        "image": user.image or "",
        "role": user.role or "",
        "banned": "true" if user.banned else "false",
        "ban_reason": user.ban_reason or "",
        "ban_expires_0": "",
        "ban_expires_1": "",
        **MANAGEMENT,
    }
    return {**form, **changes}


@pytest.mark.parametrize(
    "changes",
    [
        {"email": "not-an-email"},
        {"email": ""},
        {"username": "has space"},
        {"username": "ab"},
        {"username": "taken"},
        {"email": "TAKEN@example.com"},
        {"role": "overlord"},
        {"role": "user,overlord"},
        {"role": ""},
    ],
    ids=lambda changes: ",".join(f"{k}={v}" for k, v in changes.items()),
)
def test_bad_values_typed_by_staff_get_a_form_error_never_a_500(staff, world, make_user, changes):
    owner, _, _ = world
    make_user(username="Taken", email="taken@example.com")
    response = staff.post(reverse("admin:accounts_user_change", args=[owner.id]), _user_form(owner, **changes))
    assert response.status_code == 200
    assert b"errorlist" in response.content
    owner.refresh_from_db()
    assert (owner.username, owner.email, owner.role) == ("Owner", "owner@example.com", "user")


def test_staff_may_give_known_roles_and_keep_one_the_identity_app_wrote(staff, world, make_user, settings):
    owner, _, _ = world
    url = reverse("admin:accounts_user_change", args=[owner.id])
    assert staff.post(url, _user_form(owner, role="gm,admin")).status_code == 302
    owner.refresh_from_db()
    assert owner.role == "gm,admin"
    written = make_user(username=None, email="written@example.com", role="moderator", image="data:image/png;base64,AA")
    written_url = reverse("admin:accounts_user_change", args=[written.id])
    response = staff.post(written_url, _user_form(written, name="Edited by staff"))
    assert response.status_code == 302
    written.refresh_from_db()
    assert (written.role, written.name, written.username, written.display_username) == (
        "moderator",
        "Edited by staff",
        None,
        None,
    )
    settings.USER_ROLES = ["player", "gm"]
    assert staff.post(url, _user_form(owner, role="player")).status_code == 302


def test_a_user_created_by_staff_gets_the_first_configured_role(staff, settings):
    settings.USER_ROLES = ["player", "gm"]
    response = staff.get(reverse("admin:accounts_user_add"))
    assert b'value="player"' in response.content


def test_the_user_page_lists_sign_in_providers_and_never_their_secrets(staff, world):
    owner, _, _ = world
    SignInAccount.objects.create(
        user=owner, provider_id="credential", account_id=str(owner.id), password="scrypt:hash-that-must-not-show"
    )
    SignInAccount.objects.create(
        user=owner,
        provider_id="github",
        account_id="gh-4242",
        access_token="oauth-access-secret",
        refresh_token="oauth-refresh-secret",
        id_token="oauth-id-secret",
    )
    Verification.objects.create(identifier="reset-password:abc", value="verification-secret", expires_at=timezone.now())
    page = staff.get(reverse("admin:accounts_user_change", args=[owner.id])).content
    assert b"credential" in page
    assert b"gh-4242" in page
    for secret in (b"hash-that-must-not-show", b"oauth-access-secret", b"oauth-refresh-secret", b"oauth-id-secret"):
        assert secret not in page
    delete_page = staff.get(reverse("admin:accounts_user_delete", args=[owner.id])).content
    assert b"hash-that-must-not-show" not in delete_page
    assert b"verification-secret" not in delete_page


def test_the_user_page_shows_what_the_apps_above_accounts_register(staff, world, make_user):
    owner, character, session = world
    other = make_user(username="Other", email="other@example.com")
    Character.objects.create(user=other, name="Stranger")
    page = staff.get(reverse("admin:accounts_user_change", args=[owner.id])).content.decode()
    assert reverse("admin:characters_character_change", args=[character.id]) in page  # the characters' inline
    assert reverse("admin:sessions_app_session_change", args=[session.id]) in page  # the sessions' inline
    assert "Stranger" not in page


def test_the_front_page_counts_the_characters_pending_deletion(staff, world):
    _, character, _ = world
    assert "0 character(s) pending deletion" in staff.get(reverse("admin:index")).content.decode()
    Character.objects.filter(pk=character.pk).update(
        deleted_at=timezone.now(), purge_at=timezone.now() - timedelta(minutes=1)
    )
    page = staff.get(reverse("admin:index")).content.decode()
    assert "1 character(s) pending deletion" in page
    assert "1 due now" in page


def test_sign_in_accounts_and_verifications_have_no_admin_pages_of_their_own():
    from django.contrib import admin

    assert SignInAccount not in admin.site._registry
    assert Verification not in admin.site._registry


def test_bans_are_set_through_the_ban_page_with_a_reason_and_a_duration(staff, world):
    owner, _, _ = world
    url = reverse("admin:user_ban", args=[owner.id])
    refused = staff.post(url, {"confirmed": "yes", "reason": "", "duration": "7"})
    assert refused.status_code == 200
    assert b"errorlist" in refused.content
    owner.refresh_from_db()
    assert not owner.banned
    assert staff.post(url, {"confirmed": "yes", "reason": "chargeback", "duration": "7"}).status_code == 302
    owner.refresh_from_db()
    assert (owner.banned, owner.ban_reason) == (True, "chargeback")
    assert owner.ban_expires > timezone.now() + timedelta(days=6)
    assert not Session.objects.filter(user=owner).exists()  # signed out everywhere
    assert staff.post(reverse("admin:user_unban", args=[owner.id]), {"confirmed": "yes"}).status_code == 302
    owner.refresh_from_db()
    assert (owner.banned, owner.ban_reason, owner.ban_expires) == (False, None, None)
