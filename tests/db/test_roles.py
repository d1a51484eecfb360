"""`manage.py db_roles` and the roles it keeps, on the real server.

A scratch database goes the way a fresh deployment does: db_roles as the superuser, then
`migrate_locked` as the owner role, then a real gunicorn as the runtime role (reading the standby
as the read-only role). Every role is then held to what it may and may not do. Role names carry a
per-run prefix (roles are cluster-wide); the scratch databases and the roles are dropped at the end.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import psycopg
import pytest
import requests

from questdb.db.roles import AUDIT_TABLES, IDENTITY_TABLES, password_matches
from tests.e2e.conftest import gunicorn
from tests.ops.support import psql, server_url

REPO_ROOT = Path(__file__).resolve().parents[2]
KINDS = ("owner", "runtime", "identity", "readonly", "backup")
# Django's own tables: the identity app touches none of them.
DJANGO_TABLES = ("django_migrations", "django_session", "auth_user", "django_content_type")

pytestmark = pytest.mark.slow


class Setup:
    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:8]
        self.database = f"questdb_roles_{tag}"
        self.names = {kind: f"qr{tag}_{kind}" for kind in KINDS}
        self.passwords = {kind: f"{kind}-{uuid.uuid4().hex}" for kind in KINDS}
        self.databases = [self.database]

    def url(self, kind: str | None = None, database: str | None = None) -> str:
        base = server_url()
        if kind is not None:  # trust auth locally: the role's name is what counts
            base = base.replace("postgres://postgres@", f"postgres://{self.names[kind]}@")
        return f"{base}/{database or self.database}"

    def env(self, database_url: str, **extra: str) -> dict:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("DB_", "DATABASE_", "BACKUP_", "MIGRATE_"))
        }
        for kind in KINDS:
            env[f"DB_{kind.upper()}_ROLE"] = self.names[kind]
            env[f"DB_{kind.upper()}_PASSWORD"] = self.passwords[kind]
        env.update(DATABASE_URL=database_url, QUESTDB_ENV="development", PYTHONUNBUFFERED="1", **extra)
        return env

    def manage(self, *args: str, database_url: str | None = None, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO_ROOT,
            env=self.env(database_url or self.url(), **extra),
            capture_output=True,
            text=True,
            timeout=300,
        )

    def connect(self, kind: str) -> psycopg.Connection:
        return psycopg.connect(self.url(kind), autocommit=True)


def _statements(output: str) -> list[str]:
    return [line for line in output.splitlines() if line and not line.startswith("--")]


def _ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def roles():
    setup = Setup()
    psql(f"CREATE DATABASE {setup.database}")
    try:
        setup.dry_run = _ok(setup.manage("db_roles", "--dry-run"))
        setup.first = _ok(setup.manage("db_roles"))
        setup.second = _ok(setup.manage("db_roles"))
        setup.migrated = _ok(
            setup.manage("migrate_locked", database_url=setup.url("runtime"), DATABASE_OWNER_URL=setup.url("owner"))
        )
        yield setup
    finally:
        for database in setup.databases:
            psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        for name in setup.names.values():
            psql(f'DROP ROLE IF EXISTS "{name}"')


def _refused(connection: psycopg.Connection, statement: str, params=None) -> str:
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as refusal:
        connection.execute(statement, params)
    return str(refusal.value)


# --- the command --------------------------------------------------------------------------


def test_dry_run_prints_exactly_what_the_run_applies_with_passwords_masked(roles):
    planned, applied = _statements(roles.dry_run), _statements(roles.first)
    assert planned == applied
    assert len(applied) > 20
    assert any(line.startswith(f'CREATE ROLE "{roles.names["runtime"]}"') for line in applied)
    assert f'REVOKE CONNECT, TEMPORARY ON DATABASE "{roles.database}" FROM PUBLIC;' in applied
    everything = roles.dry_run + roles.first
    assert "PASSWORD '********'" in everything
    for password in roles.passwords.values():
        assert password not in everything
    assert "SCRAM-SHA-256" not in everything


def test_a_second_run_changes_nothing(roles):
    assert _statements(roles.second) == []
    assert "no changes" in roles.second
    # Not even after the migrations: default privileges and migrate_locked's grants left nothing to do.
    after = _ok(roles.manage("db_roles", "--dry-run"))
    assert _statements(after) == [], after


def test_passwords_are_stored_hashed_and_checked_without_resetting(roles):
    stored = psql(f"SELECT rolpassword FROM pg_authid WHERE rolname = '{roles.names['runtime']}'")
    assert stored.startswith("SCRAM-SHA-256$")
    assert password_matches(stored, role=roles.names["runtime"], password=roles.passwords["runtime"])
    assert not password_matches(stored, role=roles.names["runtime"], password="another")
    changed = roles.manage("db_roles", "--dry-run", DB_RUNTIME_PASSWORD="rotated")
    assert _statements(_ok(changed)) == [f"ALTER ROLE \"{roles.names['runtime']}\" WITH PASSWORD '********';"]


def test_a_superuser_or_the_running_role_is_never_taken_as_a_questdb_role(roles):
    result = roles.manage("db_roles", "--dry-run", DB_RUNTIME_ROLE="postgres")
    assert result.returncode == 1
    assert "the role running this command" in result.stderr
    assert "Traceback" not in result.stderr


def test_roles_get_no_attribute_beyond_login(roles):
    rows = psql(
        "SELECT rolname, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, rolcanlogin "
        f"FROM pg_roles WHERE rolname LIKE '{roles.names['owner'][:10]}%' ORDER BY 1"
    ).splitlines()
    assert len(rows) == 5
    assert all(row.split("|")[1:] == ["f", "f", "f", "f", "f", "t"] for row in rows), rows


def test_migrate_locked_as_the_owner_grants_the_identity_tables(roles):
    assert "Took the migration lock" in roles.migrated
    for table in ("users", "sessions"):
        assert (
            f'GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE "public"."{table}" TO "{roles.names["identity"]}";'
            in roles.migrated
        )
    owners = psql(
        "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class WHERE relnamespace = 'public'::regnamespace",
        roles.database,
    )
    assert owners == roles.names["owner"]


def test_migrate_locked_can_log_in_as_a_member_and_act_as_the_owner(roles):
    """DB_OWNER_LOGIN=false: an administrator logs in and `SET ROLE`s the owner (`?assume_role=`)."""
    owner_url = f"{roles.url()}?assume_role={roles.names['owner']}"
    result = roles.manage("migrate_locked", database_url=roles.url("runtime"), DATABASE_OWNER_URL=owner_url)
    output = _ok(result)
    assert "No migrations to apply." in output
    assert "Grants of questdb's roles: 0 statement(s)." in output  # printed only when acting as the owner


# --- the runtime role -----------------------------------------------------------------------


def test_the_api_works_as_the_runtime_role(roles):
    with roles.connect("identity") as identity:
        user_id = identity.execute(
            "INSERT INTO users (username, email, name) VALUES ('Runner', 'runner@example.com', 'R') RETURNING id"
        ).fetchone()[0]
        identity.execute(
            "INSERT INTO sessions (token, expires_at, user_id) VALUES ('runtime-token', now() + interval '1 hour', %s)",
            [user_id],
        )
    created = roles.manage("create_api_key", "role-test", "--scope", "write", database_url=roles.url("runtime"))
    key = _ok(created).strip().splitlines()[-1]
    env = roles.env(
        roles.url("runtime"),
        DB_READ_HOST=os.environ.get("DB_READ_HOST", ""),
        DB_READ_USER=roles.names["readonly"],
        DB_READ_PASSWORD=roles.passwords["readonly"],
    )
    with gunicorn(**env) as base, requests.Session() as http:
        http.headers["Authorization"] = f"Api-Key {key}"
        assert http.get(f"{base}/api/v1/users/{user_id}/").json()["username"] == "Runner"
        character = http.post(f"{base}/api/v1/characters/", json={"user": str(user_id), "name": "Roley"})
        assert character.status_code == 201, character.text
        character_id = character.json()["id"]
        patched = http.patch(f"{base}/api/v1/characters/{character_id}/", json={"money": 42})
        assert patched.status_code == 200, patched.text
        assert http.delete(f"{base}/api/v1/characters/{character_id}/").status_code == 200
        assert http.post(f"{base}/api/v1/characters/{character_id}/restore/").status_code == 200
        listed = http.get(f"{base}/api/v1/characters/", params={"user": str(user_id)}).json()
        assert [item["money"] for item in listed["results"]] == [42]
        session = http.post(f"{base}/api/v1/sessions/lookup/", json={"token": "runtime-token"})
        assert session.status_code == 200, session.text
        assert http.post(f"{base}/api/v1/sessions/{session.json()['id']}/refresh/").status_code == 200
        ready = http.get(f"{base}/readyz").json()
        assert ready["status"] == "ready"
        if os.environ.get("DB_READ_HOST"):  # the standby, read as the read-only role
            assert ready["databases"]["replica_1"]["reachable"] is True, ready


@pytest.mark.parametrize(
    "statement",
    [
        "DROP TABLE characters",
        "CREATE TABLE intruder (id int)",
        "ALTER TABLE characters ADD COLUMN intruder int",
        "TRUNCATE characters",
        "CREATE TEMPORARY TABLE scratch (id int)",
        "CREATE ROLE intruder",
        "ALTER ROLE CURRENT_USER CREATEROLE",
        "CREATE SCHEMA intruder",
        "CREATE INDEX ON characters (money)",
    ],
)
def test_the_runtime_role_may_not_change_the_schema_or_the_roles(roles, statement):
    with roles.connect("runtime") as connection:
        _refused(connection, statement)


@pytest.mark.parametrize("command", ["migrate", "migrate_locked"])
def test_migrations_refuse_to_run_as_the_runtime_role(roles, command):
    result = roles.manage(command, "--noinput" if command == "migrate" else "-v1", database_url=roles.url("runtime"))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"CommandError: migrations must run as the owner role (DATABASE_OWNER_URL): {roles.names['runtime']} has "
        "no CREATE privilege on schema public. Run `manage.py migrate_locked`, which connects with DATABASE_OWNER_URL."
    )


# --- the identity role ----------------------------------------------------------------------


@pytest.mark.parametrize("table", ["characters", "api_keys", *DJANGO_TABLES])
def test_the_identity_role_may_not_read_questdb_s_own_tables(roles, table):
    with roles.connect("identity") as connection:
        assert f"permission denied for table {table}" in _refused(connection, f"SELECT * FROM {table}")


def test_the_identity_role_writes_users_and_sessions_and_deletes_cascade(roles):
    with roles.connect("runtime") as runtime, roles.connect("identity") as identity:
        user_id = identity.execute(
            "INSERT INTO users (username, email, name) VALUES ('Ident', 'ident@example.com', 'I') RETURNING id"
        ).fetchone()[0]
        identity.execute("UPDATE users SET email_verified = true, role = 'gm' WHERE id = %s", [user_id])
        identity.execute(
            "INSERT INTO sessions (token, expires_at, user_id) VALUES ('ident-token', now() + interval '1 day', %s)",
            [user_id],
        )
        identity.execute("UPDATE sessions SET expires_at = now() + interval '2 days' WHERE user_id = %s", [user_id])
        identity.execute("DELETE FROM sessions WHERE token = 'ident-token'")
        runtime.execute(
            "INSERT INTO characters (user_id, name, stats, inventory, skills, looks, position) "
            "VALUES (%s, 'Casc', '{}', '[]', '[]', '{}', '{}')",
            [user_id],
        )
        # The cascade runs with the table owner's rights: the identity app needs none on characters.
        identity.execute("DELETE FROM users WHERE id = %s", [user_id])
        assert runtime.execute("SELECT count(*) FROM characters WHERE user_id = %s", [user_id]).fetchone()[0] == 0
        _refused(identity, "TRUNCATE sessions")
        _refused(identity, "CREATE TABLE intruder (id int)")


def test_identity_grants_are_one_declared_list(roles):
    granted = psql(
        "SELECT DISTINCT table_name FROM information_schema.role_table_grants "
        f"WHERE grantee = '{roles.names['identity']}' ORDER BY 1",
        roles.database,
    ).splitlines()
    existing = psql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'", roles.database).splitlines()
    assert granted == sorted(table for table in (*IDENTITY_TABLES, *AUDIT_TABLES) if table in existing)
    assert {"users", "sessions"} <= set(granted)
    audit_privileges = psql(
        "SELECT DISTINCT privilege_type FROM information_schema.role_table_grants "
        f"WHERE grantee = '{roles.names['identity']}' AND table_name LIKE 'audit_%'",
        roles.database,
    ).splitlines()
    assert audit_privileges == ["INSERT"]  # it appends to the audit trail, never reads or rewrites it


# --- read-only and backup -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["readonly", "backup"])
def test_readers_read_every_table_and_write_none(roles, kind):
    tables = psql("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1", roles.database)
    with roles.connect(kind) as connection:
        for table in tables.splitlines():
            connection.execute(f"SELECT count(*) FROM {table}")
        _refused(connection, "INSERT INTO users (username, email, name) VALUES ('Nope', 'nope@example.com', 'N')")
        _refused(connection, "UPDATE characters SET money = 0")
        _refused(connection, "DELETE FROM sessions")
        _refused(connection, "TRUNCATE api_keys")
        _refused(connection, "CREATE TABLE intruder (id int)")


def test_the_backup_role_backs_up_and_the_owner_restores(roles, tmp_path):
    home = Path(tempfile.mkdtemp(prefix="qdb-rg-"))
    try:
        uid = "questdb roles test <roles@questdb.test>"
        gpg = ["gpg", "--homedir", str(home), "--batch", "--no-tty"]
        subprocess.run(
            [*gpg, "--passphrase", "", "--quick-gen-key", uid, "future-default", "default", "never"], check=True
        )
        public = subprocess.run([*gpg, "--armor", "--export", uid], check=True, capture_output=True).stdout.decode()
        private = subprocess.run([*gpg, "--armor", "--export-secret-keys", uid], check=True, capture_output=True)
        keys = {"BACKUP_DIR": str(tmp_path), "GNUPGHOME": str(home)}
        backup = roles.manage(
            "backup",
            database_url=roles.url("backup"),
            BACKUP_GPG_RECIPIENT="roles@questdb.test",
            BACKUP_GPG_PUBLIC_KEY=public,
            **keys,
        )
        assert "Backup finished" in _ok(backup)
        target = f"{roles.database}_restored"
        psql(f'CREATE DATABASE {target} OWNER "{roles.names["owner"]}"')
        roles.databases.append(target)
        restore = roles.manage(
            "restore",
            "--latest",
            "--target-database",
            target,
            database_url=roles.url("runtime"),
            DATABASE_OWNER_URL=roles.url("owner"),
            BACKUP_GPG_PRIVATE_KEY=private.stdout.decode(),
            **keys,
        )
        assert "every table's row count matches the backup" in _ok(restore)
        restored = psql("SELECT count(*) FROM users", target)
        assert restored == psql("SELECT count(*) FROM users", roles.database)
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


# --- later migrations -----------------------------------------------------------------------


def test_a_table_a_later_migration_creates_gets_its_grants_without_a_manual_step(roles):
    with roles.connect("owner") as owner:
        owner.execute("CREATE TABLE guilds (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, name text)")
    with roles.connect("runtime") as runtime:
        runtime.execute("INSERT INTO guilds (name) VALUES ('first')")
        runtime.execute("UPDATE guilds SET name = 'renamed'")
        _refused(runtime, "DROP TABLE guilds")
    for kind in ("readonly", "backup"):
        with roles.connect(kind) as reader:
            assert reader.execute("SELECT name FROM guilds").fetchone()[0] == "renamed"
            _refused(reader, "DELETE FROM guilds")
    with roles.connect("identity") as identity:
        _refused(identity, "SELECT * FROM guilds")
    assert _statements(_ok(roles.manage("db_roles", "--dry-run"))) == []


def test_a_table_created_by_another_role_is_handed_to_the_owner(roles):
    psql("CREATE TABLE legacy (id int)", roles.database)
    planned = _statements(_ok(roles.manage("db_roles")))
    assert planned[0] == f'ALTER TABLE "public"."legacy" OWNER TO "{roles.names["owner"]}";'
    assert f'GRANT SELECT ON TABLE "public"."legacy" TO "{roles.names["readonly"]}";' in planned
    assert _statements(_ok(roles.manage("db_roles"))) == []


@pytest.mark.parametrize("scenario", ["sign-up-and-sign-in", "admin"])
def test_better_auths_flows_work_as_the_identity_role(roles, scenario):
    """The real better-auth, with the README's config, logged in as the identity role; questdb as the runtime role."""
    from tests.identity.test_better_auth import assert_questdb_agrees, run_harness

    runtime = roles.url("runtime")
    created = roles.manage("create_api_key", f"identity-{scenario}", "--scope", "read", database_url=runtime)
    key = _ok(created).strip().splitlines()[-1]
    with gunicorn(**roles.env(runtime, REDIS_URL="", DB_READ_HOST="")) as base:
        steps = run_harness(scenario, questdb_url=base, api_key=key, database_url=roles.url("identity"))
    for name, step in steps.items():
        if name != "sign-in-while-banned":
            assert step["error"] is None, step
        assert_questdb_agrees(step)
    assert steps, "the harness ran no step"
