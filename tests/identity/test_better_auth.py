"""The identity app as it is: the real better-auth, configured by the README's own block, writing questdb's tables.

Each test runs one scenario of `harness.mjs` (Node.js, better-auth from the npm registry pinned by
package-lock.json, installed by `make test`) against the test database, while a real gunicorn serves
questdb's API over HTTP. After every better-auth call the harness records better-auth's own view of the
user and their sessions and questdb's answers; these tests check that the two agree.

Most run against a gunicorn without Redis and without replicas, so every answer is read fresh from the
primary: they check the schema and the meaning of what better-auth writes. The last ones run the same
calls against a questdb with its cache, its replica and its invalidation consumer: each step waits until
the consumer's heartbeat is past the call (QUESTDB_SETTLE), then every lookup must answer the new rows.
"""

import json
import os
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from django.db import connection, connections

from tests.cache.consumer import ConsumerProcess
from tests.e2e.conftest import gunicorn

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

HERE = Path(__file__).resolve().parent
README = HERE.parents[1] / "README.md"
SESSION_TTL = 8 * 24 * 3600  # unlike better-auth's 7 days, so a questdb refresh is told apart from its own
PASSWORD_SECRET = "questdb-identity-harness-secret-of-enough-length"

# better-auth's field names (as its adapter returns them) and the names questdb's API gives the same values.
USER_FIELDS = {
    "id": "id",
    "name": "name",
    "email": "email",
    "emailVerified": "email_verified",
    "image": "image",
    "username": "username",
    "displayUsername": "display_username",
    "role": "role",
    "banned": "banned",
    "banReason": "ban_reason",
    "banExpires": "ban_expires",
    "createdAt": "created_at",
    "updatedAt": "updated_at",
}
SESSION_FIELDS = {
    "id": "id",
    "expiresAt": "expires_at",
    "ipAddress": "ip_address",
    "userAgent": "user_agent",
    "impersonatedBy": "impersonated_by",
    "createdAt": "created_at",
    "updatedAt": "updated_at",
}
TIMESTAMPS = {"createdAt", "updatedAt", "expiresAt", "banExpires"}


@pytest.fixture(scope="module")
def questdb_url(django_db_setup):
    with gunicorn(REDIS_URL="", DB_READ_HOST="", SESSION_TTL=str(SESSION_TTL)) as base:
        yield base


def _database_url(**query: str) -> str:
    primary = connections["default"].settings_dict
    url = f"postgres://{primary['USER']}@{primary['HOST']}:{primary['PORT']}/{primary['NAME']}"
    return url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


@pytest.fixture(scope="module")
def cached_questdb_url(django_db_setup, tmp_path_factory):
    """questdb with Redis, the standby and `manage.py invalidate_cache`, as production runs it."""
    from django.conf import settings

    consumer = ConsumerProcess(redis_url=settings.REDIS_URL, log_path=tmp_path_factory.mktemp("consumer") / "log")
    consumer.start().wait_for("leading")
    try:
        with gunicorn(SESSION_TTL=str(SESSION_TTL)) as base:
            yield base
    finally:
        consumer.stop()


def run_harness(
    scenario: str, *, questdb_url: str, api_key: str, database_url: str | None = None, settle: bool = False
) -> dict:
    if not (HERE / "node_modules" / "better-auth").is_dir():
        pytest.fail("better-auth is not installed: run `make tests/identity/node_modules/.installed` (make test does)")
    environment = {
        **os.environ,
        "DATABASE_URL": database_url or _database_url(),
        "QUESTDB_URL": questdb_url,
        "QUESTDB_API_KEY": api_key,
        "BETTER_AUTH_SECRET": PASSWORD_SECRET,
        "BETTER_AUTH_URL": "http://127.0.0.1:3000",
        "BETTER_AUTH_TELEMETRY": "0",
        "README": str(README),
        **({"QUESTDB_SETTLE": "1"} if settle else {}),
    }
    done = subprocess.run(
        ["node", "harness.mjs", scenario], cwd=HERE, env=environment, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"harness {scenario} failed:\n{done.stderr}"
    steps = json.loads(done.stdout.strip().splitlines()[-1])["steps"]
    return {step["step"]: step for step in steps}


def _comparable(name: str, value):
    """Timestamps as instants to the millisecond: better-auth reads them into JavaScript dates."""
    if name in TIMESTAMPS and value is not None:
        instant = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return instant.replace(microsecond=instant.microsecond // 1000 * 1000)
    return value


def assert_user_agrees(auth_user: dict, body: dict) -> None:
    assert set(auth_user) == set(USER_FIELDS), "better-auth returns a user field questdb does not map"
    for field, ours in USER_FIELDS.items():
        assert _comparable(field, body[ours]) == _comparable(field, auth_user[field]), field


def assert_session_agrees(auth_session: dict, body: dict) -> None:
    for field, ours in SESSION_FIELDS.items():
        assert _comparable(field, body[ours]) == _comparable(field, auth_session[field]), field
    assert body["user"]["id"] == auth_session["userId"]


def assert_questdb_agrees(step: dict) -> None:
    """questdb answers what better-auth's rows say: the user's fields, each session valid or gone."""
    user = step["user"]
    if user["auth"] is None:
        assert (user["questdb"]["status"], user["questdb"]["body"]["code"]) == (404, "user_not_found")
    else:
        assert user["questdb"]["status"] == 200, user["questdb"]
        assert_user_agrees(user["auth"], user["questdb"]["body"])
        assert user["by_email"]["body"]["id"] == user["auth"]["id"]
        if user["auth"]["username"]:
            assert user["by_username"]["body"]["id"] == user["auth"]["id"]
    for session in user["sessions"]:
        for answer in (session["by_id"], session["by_token"]):
            if session["auth"] is None:
                assert (answer["status"], answer["body"]["code"]) == (404, "session_not_found")
            else:
                assert answer["status"] == 200, answer
                assert_session_agrees(session["auth"], answer["body"])
                assert_user_agrees(user["auth"], answer["body"]["user"])


def _valid_sessions(step: dict) -> int:
    return sum(session["auth"] is not None for session in step["user"]["sessions"])


def _near(value: str, expected: datetime, tolerance: timedelta = timedelta(minutes=1)) -> bool:
    return abs(datetime.fromisoformat(value.replace("Z", "+00:00")) - expected) < tolerance


def _readme_block() -> str:
    text = README.read_text()
    section = text[text.index("### Sharing the tables with better-auth") :]
    return re.search(r"```ts\n(.*?)```", section, re.S).group(1)


def test_the_readme_config_leaves_schema_validation_on_and_ids_to_the_database():
    block = _readme_block()
    assert "validateSchema" not in block
    assert 'generateId: "uuid"' in block


def test_better_auths_schema_validation_passes_on_the_migrated_database(questdb_url, write_key):
    steps = run_harness("check", questdb_url=questdb_url, api_key=write_key)
    assert steps["schema-check-enabled"]["extra"]["enabled"] is True
    assert steps["schema-check"]["error"] is None


def test_better_auths_schema_validation_refuses_a_schema_without_a_column_it_writes(questdb_url, write_key):
    # The same check, against copies of the tables in a schema of their own that lacks users.ban_reason:
    # proof that the check above runs and looks at the columns.
    with connection.cursor() as cursor:
        cursor.execute("DROP SCHEMA IF EXISTS drift CASCADE; CREATE SCHEMA drift")
        for table in ("users", "sessions", "account", "verification"):
            cursor.execute(f"CREATE TABLE drift.{table} (LIKE public.{table} INCLUDING ALL)")
        cursor.execute("ALTER TABLE drift.users DROP COLUMN ban_reason")
    try:
        drifted = _database_url(options="-c%20search_path%3Ddrift")
        steps = run_harness("check", questdb_url=questdb_url, api_key=write_key, database_url=drifted)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP SCHEMA drift CASCADE")
    error = steps["schema-check"]["error"]
    assert error["code"] == "SCHEMA_MISMATCH"
    assert "users.ban_reason" in error["message"]


def test_sign_up_and_sign_in_with_and_without_a_username(questdb_url, write_key):
    steps = run_harness("sign-up-and-sign-in", questdb_url=questdb_url, api_key=write_key)
    for step in steps.values():
        assert step["error"] is None, step
        assert_questdb_agrees(step)
    alice = steps["sign-up-with-username"]["user"]["questdb"]["body"]
    assert (alice["username"], alice["display_username"], alice["email"]) == (
        "alice_one",
        "Alice_One",
        "alice@example.com",
    )
    assert (alice["role"], alice["banned"]) == ("user", False)
    bob = steps["sign-up-without-username"]["user"]
    assert (bob["questdb"]["body"]["username"], bob["by_username"]) == (None, None)
    assert _valid_sessions(steps["sign-up-without-username"]) == 1
    assert _valid_sessions(steps["sign-in-by-username"]) == 2
    assert _valid_sessions(steps["sign-in-by-email"]) == 3
    got = steps["get-session"]["extra"]["got"]
    first = steps["get-session"]["user"]["sessions"][0]["by_id"]["body"]
    assert (got["session"]["id"], _comparable("expiresAt", got["session"]["expiresAt"])) == (
        first["id"],
        _comparable("expiresAt", first["expires_at"]),
    )


def test_update_user_change_password_sign_out_and_revoke_sessions(questdb_url, write_key):
    steps = run_harness("account", questdb_url=questdb_url, api_key=write_key)
    for step in steps.values():
        assert step["error"] is None, step
        assert_questdb_agrees(step)
    carol = steps["update-user"]["user"]["questdb"]["body"]
    assert (carol["name"], carol["username"], len(carol["display_username"])) == ("Carol Renamed", "carol_two", 41)
    assert carol["image"].startswith("data:image/png;base64,")
    assert len(carol["image"]) > 4000
    gone = requests.get(f"{questdb_url}/api/v1/users/by-username/carol/", headers=_auth(write_key), timeout=5)
    assert (gone.status_code, gone.json()["code"]) == (404, "user_not_found")
    assert _valid_sessions(steps["update-user"]) == 2
    assert _valid_sessions(steps["change-password"]) == 1  # revokeOtherSessions: only the new one is left
    assert _valid_sessions(steps["sign-out"]) == 0
    assert len(steps["revoke-sessions"]["user"]["sessions"]) == 5
    assert _valid_sessions(steps["revoke-sessions"]) == 0


def test_admin_create_user_set_role_ban_unban_impersonate_and_remove(questdb_url, write_key):
    steps = run_harness("admin", questdb_url=questdb_url, api_key=write_key)
    for name, step in steps.items():
        if name != "sign-in-while-banned":
            assert step["error"] is None, step
        assert_questdb_agrees(step)
    user = lambda name: steps[name]["user"]["questdb"]["body"]  # noqa: E731
    assert (user("admin-create-user")["username"], user("admin-create-user")["role"]) == (None, "user")
    assert user("set-role-custom")["role"] == "moderator"
    assert user("set-role-list")["role"] == "moderator,gm"
    banned = user("ban-user")
    assert (banned["banned"], banned["ban_reason"]) == (True, "botting")
    assert _near(banned["ban_expires"], datetime.now(UTC) + timedelta(hours=1))
    assert _valid_sessions(steps["ban-user"]) == 0  # better-auth deletes a banned user's sessions
    assert steps["sign-in-while-banned"]["error"]["code"] == "BANNED_USER"
    unbanned = user("unban-user")
    assert (unbanned["banned"], unbanned["ban_reason"], unbanned["ban_expires"]) == (False, None, None)
    assert _valid_sessions(steps["sign-in-after-unban"]) == 1
    impersonated = steps["impersonate-user"]
    staff_id = impersonated["extra"]["staff_id"]
    acting = [s["by_id"]["body"] for s in impersonated["user"]["sessions"] if s["auth"] and s["auth"]["impersonatedBy"]]
    assert [s["impersonated_by"] for s in acting] == [staff_id]
    assert _near(acting[0]["expires_at"], datetime.now(UTC) + timedelta(hours=1))
    assert steps["remove-user"]["user"]["questdb"]["status"] == 404
    assert _valid_sessions(steps["remove-user"]) == 0


def test_questdbs_session_refresh_is_seen_by_better_auths_get_session(questdb_url, write_key):
    step = run_harness("refresh", questdb_url=questdb_url, api_key=write_key)["questdb-refresh-seen-by-get-session"]
    assert step["error"] is None, step
    assert_questdb_agrees(step)
    refreshed, got = step["extra"]["refreshed"], step["extra"]["got"]
    assert refreshed["status"] == 200
    assert _near(refreshed["body"]["expires_at"], datetime.now(UTC) + timedelta(seconds=SESSION_TTL))
    assert _comparable("expiresAt", got["session"]["expiresAt"]) == _comparable(
        "expiresAt", refreshed["body"]["expires_at"]
    )


def _auth(key: str) -> dict:
    return {"Authorization": f"Api-Key {key}"}


@pytest.mark.parametrize("scenario", ["account", "admin"])
def test_every_better_auth_call_reaches_questdbs_cache(cached_questdb_url, write_key, scenario):
    # Each step's snapshot reads (and so caches) every lookup of the user and their sessions; the next
    # better-auth call changes the rows behind them: updateUser, signOut, revokeSessions, banUser,
    # unbanUser, removeUser (a cascade) ...
    steps = run_harness(scenario, questdb_url=cached_questdb_url, api_key=write_key, settle=True)
    for name, step in steps.items():
        if name != "sign-in-while-banned":
            assert step["error"] is None, step
        assert_questdb_agrees(step)
    if scenario == "account":
        gone = requests.get(
            f"{cached_questdb_url}/api/v1/users/by-username/carol/", headers=_auth(write_key), timeout=5
        )
        assert gone.status_code == 404  # the old username, cached before the rename
        assert _valid_sessions(steps["sign-out"]) == 0
    else:
        assert _valid_sessions(steps["ban-user"]) == 0
        assert steps["remove-user"]["user"]["questdb"]["status"] == 404
