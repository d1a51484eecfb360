"""One case rule for user lookups: the query, the index and the cache key fold case the same way.

PostgreSQL's lower() maps 'İ' (U+0130) to 'i' where Python's maps it to 'i̇', so a lookup
could find a user under a key its invalidation never reaches. Every spelling that finds a
user must find it under the key an edit deletes.
"""

import pytest
from django.db import connection
from django.urls import reverse

from accounts.keys import email_key, username_key
from accounts.models import User, ascii_fold
from tests.test_admin import _user_form

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

KELVIN = "\u212a"  # KELVIN SIGN: lower() gives ASCII 'k' in Python and PostgreSQL
DOTTED_I = "\u0130"  # LATIN CAPITAL LETTER I WITH DOT ABOVE
SPELLINGS = ["alice", "ALICE", "Alice", f"al{DOTTED_I}ce", "al\u0131ce", f"{KELVIN}elvin", "kelvin", "KELVIN"]


def _admin_edit(staff, user: User, **changes) -> None:
    data = _user_form(user, **changes)
    response = staff.post(reverse("admin:accounts_user_change", args=[user.pk]), data)
    assert response.status_code == 302, response.content[:2000]


def _lookups(api, spellings) -> dict:
    answers = {}
    for spelling in spellings:
        response = api.get(f"/api/v1/users/by-username/{spelling}/")
        answers[spelling] = (response.status_code, response.json().get("name"))
    return answers


def test_every_spelling_that_finds_a_user_is_served_fresh_after_an_admin_edit(api, staff, make_user):
    alice = make_user(username="alice", name="Alice v1")
    kelvin = make_user(username="kelvin", name="Kelvin v1")
    before = _lookups(api, SPELLINGS)  # fills the cache under every key a spelling uses
    _admin_edit(staff, alice, name="Alice v2", role="gm")
    _admin_edit(staff, kelvin, name="Kelvin v2")
    after = _lookups(api, SPELLINGS)
    for spelling, (status, name) in after.items():
        if status == 200:
            assert name.endswith("v2"), f"{spelling!r} still serves {name!r}"
        assert before[spelling][0] == status  # found before iff found after: one rule
    assert after["ALICE"] == (200, "Alice v2")
    assert after["KELVIN"] == (200, "Kelvin v2")


@pytest.mark.parametrize("spelling", [f"al{DOTTED_I}ce", "al\u0131ce", f"{KELVIN}elvin", "\uff41lice"])
def test_a_non_ascii_spelling_of_an_ascii_username_finds_nobody(api, make_user, spelling):
    make_user(username="alice")
    make_user(username="kelvin")
    response = api.get(f"/api/v1/users/by-username/{spelling}/")
    assert response.status_code == 404
    assert response.json()["code"] == "user_not_found"


def test_the_key_is_the_database_s_fold_of_what_it_found(api, make_user):
    make_user(username="Alice", email="Émile.Zola@Example.COM")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT translate(username, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'), "
            "translate(email, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') FROM users"
        )
        folded_username, folded_email = cursor.fetchone()
    assert username_key("ALICE").ident == folded_username == ascii_fold("Alice")
    assert email_key("ÉMILE.zola@example.com").ident == "Émile.zola@example.com"
    assert email_key("Émile.Zola@example.com").ident == folded_email
    assert api.get("/api/v1/users/by-email/Émile.zola@EXAMPLE.com/").status_code == 200
    assert api.get("/api/v1/users/by-email/émile.zola@example.com/").status_code == 404  # non-ASCII: exact


def test_lookups_use_the_folded_index(make_user):
    for number in range(50):
        make_user(username=f"user{number}")
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        sql, params = User.objects.with_username("USER7").query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("SET enable_seqscan = on")
    assert "users_username_folded_idx" in plan
