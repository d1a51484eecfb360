"""Constraints live in the database: these tests write around the ORM's validation on purpose."""

import pytest
from django.db import DataError, IntegrityError, connection, transaction

from accounts.models import SignInAccount, User
from characters.models import Character
from sessions_app.models import Session

pytestmark = pytest.mark.django_db


def _violates(sql: str, params: list) -> bool:
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, params)
    except (IntegrityError, DataError):
        return True
    return False


@pytest.mark.parametrize(
    ("field", "first", "second"),
    [("username", "Alice", "aLICE"), ("email", "Alice@Example.com", "alice@example.COM")],
)
def test_username_and_email_are_unique_in_any_case(make_user, field, first, second):
    make_user(**{field: first})
    with pytest.raises(IntegrityError), transaction.atomic():
        make_user(**{field: second})


def test_character_names_are_unique_in_any_case_including_pending_deletion(make_user):
    owner = make_user()
    Character.objects.create(user=owner, name="Hero", deleted_at="2026-01-01T00:00Z", purge_at="2026-01-02T00:00Z")
    with pytest.raises(IntegrityError), transaction.atomic():
        Character.objects.create(user=make_user(), name="hERO")


def test_money_cannot_go_negative_in_the_database(make_user):
    character = Character.objects.create(user=make_user(), name="Miser")
    assert _violates("UPDATE characters SET money = -1 WHERE id = %s", [character.id])
    assert not _violates("UPDATE characters SET money = 0 WHERE id = %s", [character.id])


@pytest.mark.parametrize("username", ["ab", "has space", "x" * 31, "bad-dash"])
def test_username_format_is_checked_by_the_database(username):
    assert _violates("INSERT INTO users (username, email) VALUES (%s, 'x@example.com')", [username])


def test_identity_app_can_insert_users_and_sessions_with_only_the_columns_it_knows():
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO users (username, email) VALUES ('raw.user', 'raw@example.com') RETURNING id")
        user_id = cursor.fetchone()[0]
        cursor.execute(
            "INSERT INTO sessions (token, user_id, expires_at) VALUES ('t0k3n', %s, now() + interval '1 day')",
            [user_id],
        )
    user = User.objects.get(id=user_id)
    assert (user.role, user.email_verified, user.display_username, user.name, user.banned) == (
        "user",
        False,
        None,
        "",
        False,
    )
    assert user.created_at is not None
    assert user.updated_at is not None
    assert Session.objects.get(token="t0k3n").user_id == user_id


def test_users_without_a_username_and_with_any_role_or_length_are_accepted():
    # What better-auth writes: no username (the username plugin allows it), custom and listed roles,
    # display names and images of any length (data URLs).
    rows = [
        ("first@example.com", None, None, "user", None),
        ("second@example.com", None, "D" * 40, "moderator", "data:image/png;base64," + "A" * 5000),
        ("third@example.com", "third", "Third", "moderator,gm", "https://example.com/" + "x" * 3000),
    ]
    for row in rows:
        assert not _violates(
            "INSERT INTO users (email, username, display_username, role, image) VALUES (%s, %s, %s, %s, %s)", list(row)
        )
    assert User.objects.filter(username__isnull=True).count() == 2


def test_account_and_verification_take_the_rows_better_auth_writes(make_user):
    user = make_user()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO account (account_id, provider_id, user_id, password) VALUES (%s, 'credential', %s, 'hash')",
            [str(user.id), user.id],
        )
        cursor.execute(
            "INSERT INTO verification (identifier, value, expires_at) VALUES ('reset:x', 'secret', now()) RETURNING id"
        )
        assert cursor.fetchone()[0] is not None
    assert user.sign_in_accounts.get().provider_id == "credential"
    # The foreign key is deferred to the commit; checked at once here.
    assert _violates(
        "SET CONSTRAINTS account_user_id_fk IMMEDIATE; "
        "INSERT INTO account (account_id, provider_id, user_id) VALUES ('x', 'github', gen_random_uuid())",
        [],
    )


def test_deleting_a_user_in_sql_cascades_to_characters_sessions_and_sign_in_accounts(make_user):
    owner = make_user()
    Character.objects.create(user=owner, name="Orphan")
    Session.objects.create(user=owner, token="cascade", expires_at="2099-01-01T00:00Z")
    SignInAccount.objects.create(user=owner, account_id=str(owner.id), provider_id="credential", password="hash")
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM users WHERE id = %s", [owner.id])
    assert not Character.objects.filter(user_id=owner.id).exists()
    assert not Session.objects.filter(user_id=owner.id).exists()
    assert not SignInAccount.objects.filter(user_id=owner.id).exists()


def test_tables_and_foreign_key_columns_follow_the_naming_conventions():
    with connection.cursor() as cursor:
        tables = set(connection.introspection.table_names(cursor))
        columns = {c.name for c in connection.introspection.get_table_description(cursor, "characters")}
    assert {"users", "characters", "sessions", "account", "verification", "api_keys"} <= tables
    assert {"user_id", "created_at", "updated_at", "deleted_at", "purge_at"} <= columns


def test_migrations_apply_from_zero(django_db_blocker):
    from django.core.management import call_command

    with django_db_blocker.unblock():
        call_command("migrate", "characters", "zero", verbosity=0)
        call_command("migrate", "sessions_app", "zero", verbosity=0)
        call_command("migrate", "accounts", "zero", verbosity=0)
        call_command("migrate", verbosity=0)
    assert User.objects.count() == 0
