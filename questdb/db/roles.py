"""Least-privilege PostgreSQL roles for questdb's database, kept as configured by `manage.py db_roles`.

Five roles, each with only what it needs (README, "Database roles"):

- owner: owns the database, the schema and every relation in it; migrations run as it;
- runtime: gunicorn and the workers: SELECT/INSERT/UPDATE/DELETE on every table, sequences to draw ids;
  no DDL, no TRUNCATE, no temporary tables, no role management;
- identity: the identity app: SELECT/INSERT/UPDATE/DELETE on IDENTITY_TABLES, INSERT on the audit
  trail's AUDIT_TABLES (its writes fire the audit triggers), and nothing else;
- readonly: SELECT on every table, for the replicas' readers and analytics;
- backup: SELECT on every table and sequence, what `pg_dump` of questdb's schema needs, and nothing more.

PUBLIC loses CONNECT and TEMPORARY on the database and every privilege on the schema. Default privileges
FOR ROLE owner give tables and sequences created by later migrations the runtime, readonly and backup grants
without a manual step; the identity grants are per table and follow each migration (`migrate_locked`).

The plan is computed from the catalog: every statement fixes one fact that differs from the configuration,
so a second run plans nothing, and the dry run prints exactly what a run would execute.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

# The tables the identity app (better-auth) writes directly: its whole schema, and nothing of questdb's own.
# A table missing here is granted once a migration creates it (migrate_locked re-applies the grants).
IDENTITY_TABLES = ("users", "sessions", "account", "verification")
# The audit trail's event tables: triggers on the identity tables (and the characters a user's deletion
# cascades to) write them with the writer's own privileges, so the identity role may append to them.
AUDIT_TABLES = ("audit_userevent", "audit_sessionevent", "audit_characterevent")
# questdb's tables live in the default schema.
SCHEMA = "public"
# An arbitrary constant that names "questdb roles" among advisory locks (migrations use ...001).
ROLES_LOCK_ID = 727_374_001_000_002

DML = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE"})
READ = frozenset({"SELECT"})
DRAW_IDS = frozenset({"USAGE", "SELECT"})
PRIVILEGE_ORDER = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER", "USAGE", "CREATE")
PRIVILEGE_ORDER += ("CONNECT", "TEMPORARY")
# Role attributes every questdb role has; only the owner's LOGIN is configurable.
ATTRIBUTES = {
    "rolsuper": "SUPERUSER",
    "rolcreatedb": "CREATEDB",
    "rolcreaterole": "CREATEROLE",
    "rolreplication": "REPLICATION",
    "rolbypassrls": "BYPASSRLS",
}
MASK = "********"

TABLE_KINDS = ("r", "p", "v", "m", "f")
KEYWORD = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "f": "FOREIGN TABLE", "S": "SEQUENCE"}

MIGRATE_AS_OWNER = (
    "migrations must run as the owner role (DATABASE_OWNER_URL): {user} has no CREATE privilege on schema "
    "{schema}. Run `manage.py migrate_locked`, which connects with DATABASE_OWNER_URL."
)


class RolesError(Exception):
    """A configuration the command refuses to apply; the message says why."""


@dataclass(frozen=True)
class Role:
    kind: str  # owner, runtime, identity, readonly, backup
    name: str
    password: str = field(default="", repr=False)
    login: bool = True


@dataclass(frozen=True)
class Roles:
    owner: Role
    runtime: Role
    identity: Role
    readonly: Role
    backup: Role

    @classmethod
    def from_settings(cls) -> Roles:
        from django.conf import settings

        def role(kind: str, login: bool = True) -> Role:
            upper = kind.upper()
            return Role(kind, getattr(settings, f"DB_{upper}_ROLE"), getattr(settings, f"DB_{upper}_PASSWORD"), login)

        return cls(
            owner=role("owner", settings.DB_OWNER_LOGIN),
            runtime=role("runtime"),
            identity=role("identity"),
            readonly=role("readonly"),
            backup=role("backup"),
        )

    def all(self) -> list[Role]:
        return [self.owner, self.runtime, self.identity, self.readonly, self.backup]

    def members(self) -> list[Role]:
        """The roles that use the owner's objects."""
        return [self.runtime, self.identity, self.readonly, self.backup]

    def table_grants(self, table: str) -> dict[str, frozenset[str]]:
        grants = {self.runtime.name: DML, self.readonly.name: READ, self.backup.name: READ}
        if table in IDENTITY_TABLES:
            grants[self.identity.name] = DML
        elif table in AUDIT_TABLES:
            grants[self.identity.name] = frozenset({"INSERT"})
        return grants

    def sequence_grants(self) -> dict[str, frozenset[str]]:
        return {self.runtime.name: DRAW_IDS, self.backup.name: READ}


@dataclass(frozen=True)
class Statement:
    sql: str  # what runs
    shown: str  # what is printed: the same, with any password masked


def _statement(query: sql.Composable, connection: psycopg.Connection, shown: sql.Composable | None = None):
    text = query.as_string(connection)
    return Statement(text, shown.as_string(connection) if shown is not None else text)


def _privileges(privileges: Iterable[str]) -> sql.Composable:
    ordered = sorted(privileges, key=PRIVILEGE_ORDER.index)
    return sql.SQL(", ").join(sql.SQL(privilege) for privilege in ordered)


def _grantee(name: str) -> sql.Composable:
    return sql.SQL("PUBLIC") if name == "PUBLIC" else sql.Identifier(name)


def password_matches(stored: str | None, *, role: str, password: str) -> bool:
    """Whether a pg_authid.rolpassword verifier (SCRAM-SHA-256 or md5) is that of `password`."""
    if not stored:
        return False
    if stored.startswith("SCRAM-SHA-256$"):
        try:
            iterations_salt, keys = stored.removeprefix("SCRAM-SHA-256$").split("$")
            iterations, salt = iterations_salt.split(":")
            stored_key, server_key = keys.split(":")
            salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
        except ValueError:
            return False
        client_key = hmac.new(salted, b"Client Key", "sha256").digest()
        expected_server = base64.b64encode(hmac.new(salted, b"Server Key", "sha256").digest()).decode()
        expected_stored = base64.b64encode(hashlib.sha256(client_key).digest()).decode()
        return hmac.compare_digest(expected_stored, stored_key) and hmac.compare_digest(expected_server, server_key)
    if stored.startswith("md5"):
        return hmac.compare_digest(stored, "md5" + hashlib.md5((password + role).encode()).hexdigest())
    return False


class Catalog:
    """What the server says now, read through one connection."""

    def __init__(self, connection: psycopg.Connection, roles: Roles) -> None:
        self.connection = connection
        self.roles = roles
        names = [role.name for role in roles.all()]
        self.current_user, self.database = self._one("SELECT current_user, current_database()")
        rows = self._all(
            "SELECT rolname, rolcanlogin, " + ", ".join(ATTRIBUTES) + " FROM pg_roles WHERE rolname = ANY(%s)",
            [names],
        )
        self.existing = {row[0]: {"rolcanlogin": row[1], **dict(zip(ATTRIBUTES, row[2:], strict=True))} for row in rows}
        self.passwords = self._passwords(names)
        self.database_owner = self._one(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"
        )[0]
        self.database_acl = self._acl(
            "SELECT {grantee}, a.privilege_type FROM pg_database d, "
            "aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a "
            "WHERE d.datname = current_database() AND a.grantee <> d.datdba"
        )
        schema = self._one("SELECT oid, pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = %s", [SCHEMA])
        if schema is None:
            raise RolesError(f"Database {self.database} has no schema {SCHEMA}.")
        self.schema_oid, self.schema_owner = schema
        self.schema_acl = self._acl(
            "SELECT {grantee}, a.privilege_type FROM pg_namespace n, "
            "aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a "
            "WHERE n.oid = %s AND a.grantee <> n.nspowner",
            [self.schema_oid],
        )
        self.relations = self._all(
            """
            SELECT c.relname, c.relkind, pg_get_userbyid(c.relowner),
                   EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                           AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i'))
            FROM pg_class c WHERE c.relnamespace = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
            ORDER BY c.relkind = 'S', c.relname
            """,
            [self.schema_oid],
        )
        grants: dict[str, dict[str, set[str]]] = {}
        for relation, grantee, privilege in self._all(
            """
            SELECT c.relname, CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END,
                   a.privilege_type
            FROM pg_class c, aclexplode(coalesce(c.relacl, acldefault(
                CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner))) a
            WHERE c.relnamespace = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND a.grantee <> c.relowner
            """,
            [self.schema_oid],
        ):
            grants.setdefault(relation, {}).setdefault(grantee, set()).add(privilege)
        self.relation_acl = grants
        self.default_acl: dict[str, dict[str, set[str]]] = {"r": {}, "S": {}}
        for kind, grantee, privilege in self._all(
            """
            SELECT d.defaclobjtype, CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END,
                   a.privilege_type
            FROM pg_default_acl d, aclexplode(d.defaclacl) a
            WHERE d.defaclrole = (SELECT oid FROM pg_roles WHERE rolname = %s) AND d.defaclnamespace = %s
              AND d.defaclobjtype IN ('r', 'S')
            """,
            [roles.owner.name, self.schema_oid],
        ):
            self.default_acl[kind].setdefault(grantee, set()).add(privilege)

    def _one(self, query: str, params=None):
        return self.connection.execute(query, params).fetchone()

    def _all(self, query: str, params=None) -> list[tuple]:
        return self.connection.execute(query, params).fetchall()

    def _acl(self, query: str, params=None) -> dict[str, set[str]]:
        grantee = "CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END"
        acl: dict[str, set[str]] = {}
        for name, privilege in self._all(query.replace("{grantee}", grantee), params):
            acl.setdefault(name, set()).add(privilege)
        return acl

    def _passwords(self, names: list[str]) -> dict[str, str | None] | None:
        """Stored verifiers, or None when this role may not read pg_authid (then passwords are always set)."""
        with self.connection.transaction(force_rollback=True):
            try:
                rows = self.connection.execute(
                    "SELECT rolname, rolpassword FROM pg_authid WHERE rolname = ANY(%s)", [names]
                ).fetchall()
            except psycopg.errors.InsufficientPrivilege:
                return None
        return dict(rows)

    def is_superuser(self) -> bool:
        return bool(self._one("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")[0])


class Planner:
    """The statements that bring the catalog to the configuration, in the order they must run."""

    def __init__(self, connection: psycopg.Connection, roles: Roles, catalog: Catalog) -> None:
        self.connection = connection
        self.roles = roles
        self.catalog = catalog
        self.statements: list[Statement] = []

    def add(self, query: sql.Composable, shown: sql.Composable | None = None) -> None:
        self.statements.append(_statement(query, self.connection, shown))

    def grants(self, target: sql.Composable, actual: dict[str, set[str]], wanted: dict[str, frozenset[str]]) -> None:
        """GRANT what a grantee lacks, REVOKE what it has beyond `wanted`, for PUBLIC and questdb's roles only."""
        managed = ["PUBLIC", *(role.name for role in self.roles.members())]
        for grantee in managed:
            have, want = actual.get(grantee, set()), wanted.get(grantee, frozenset())
            if extra := have - want:
                self.add(sql.SQL("REVOKE {} ON {} FROM {}").format(_privileges(extra), target, _grantee(grantee)))
            if missing := want - have:
                self.add(sql.SQL("GRANT {} ON {} TO {}").format(_privileges(missing), target, _grantee(grantee)))

    # --- the parts, in order -------------------------------------------------------------------------

    def plan_roles(self) -> None:
        for role in self.roles.all():
            wanted = {"rolcanlogin": role.login, **dict.fromkeys(ATTRIBUTES, False)}
            options = {"rolcanlogin": "LOGIN", **ATTRIBUTES}
            existing = self.catalog.existing.get(role.name)
            password = self._password(role, existing is None)
            if existing is None:
                flags = [("" if wanted[key] else "NO") + options[key] for key in options]
                query = sql.SQL("CREATE ROLE {} WITH {}").format(sql.Identifier(role.name), sql.SQL(" ".join(flags)))
                self._add_with_password(query, password)
                continue
            changed = [("" if wanted[key] else "NO") + options[key] for key in options if existing[key] != wanted[key]]
            if changed or password:
                query = sql.SQL("ALTER ROLE {} WITH {}").format(
                    sql.Identifier(role.name), sql.SQL(" ".join(changed)) if changed else sql.SQL("")
                )
                self._add_with_password(query, password, alter=not changed)

    def _password(self, role: Role, new: bool) -> str | None:
        """The verifier to set, or None when the stored one already matches (or no password is configured)."""
        if not role.password:
            return None
        if not new and self.catalog.passwords is not None:
            stored = self.catalog.passwords.get(role.name)
            if password_matches(stored, role=role.name, password=role.password):
                return None
        # Hashed here, like psql's \password: the plain password never reaches the server or its logs.
        verifier = self.connection.pgconn.encrypt_password(role.password.encode(), role.name.encode(), b"scram-sha-256")
        return verifier.decode()

    def _add_with_password(self, query: sql.Composed, password: str | None, *, alter: bool = False) -> None:
        if password is None:
            self.add(query)
            return
        joiner = sql.SQL("" if alter else " ")
        self.add(
            sql.Composed([query, joiner, sql.SQL("PASSWORD {}").format(sql.Literal(password))]),
            sql.Composed([query, joiner, sql.SQL("PASSWORD {}").format(sql.Literal(MASK))]),
        )

    def plan_database(self) -> None:
        database = sql.Identifier(self.catalog.database)
        if self.catalog.database_owner != self.roles.owner.name:
            self.add(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(database, sql.Identifier(self.roles.owner.name)))
        wanted = {role.name: frozenset({"CONNECT"}) for role in self.roles.members()}
        self.grants(sql.SQL("DATABASE {}").format(database), self.catalog.database_acl, wanted)

    def plan_schema(self) -> None:
        schema = sql.Identifier(SCHEMA)
        if self.catalog.schema_owner != self.roles.owner.name:
            self.add(sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(schema, sql.Identifier(self.roles.owner.name)))
        wanted = {role.name: frozenset({"USAGE"}) for role in self.roles.members()}
        self.grants(sql.SQL("SCHEMA {}").format(schema), self.catalog.schema_acl, wanted)

    def plan_ownership(self) -> None:
        for name, kind, owner, linked in self.catalog.relations:
            # A sequence that belongs to a column follows its table.
            if owner != self.roles.owner.name and not linked:
                self.add(
                    sql.SQL("ALTER {} {} OWNER TO {}").format(
                        sql.SQL(KEYWORD[kind]), self._qualified(name), sql.Identifier(self.roles.owner.name)
                    )
                )

    def plan_relation_grants(self, *, only_owned: bool = False) -> list[str]:
        """Grants on every relation; with only_owned, skip (and return) those the owner does not own yet."""
        skipped = []
        for name, kind, owner, _linked in self.catalog.relations:
            if only_owned and owner != self.roles.owner.name:
                skipped.append(name)
                continue
            # ALTER ... OWNER moves the old owner's own privileges to the new owner: they are not grants.
            actual = {
                grantee: privileges
                for grantee, privileges in self.catalog.relation_acl.get(name, {}).items()
                if grantee != owner
            }
            wanted = self.roles.sequence_grants() if kind == "S" else self.roles.table_grants(name)
            keyword = "SEQUENCE" if kind == "S" else "TABLE"
            self.grants(sql.SQL("{} {}").format(sql.SQL(keyword), self._qualified(name)), actual, wanted)
        return skipped

    def plan_default_privileges(self) -> None:
        owner, schema = sql.Identifier(self.roles.owner.name), sql.Identifier(SCHEMA)
        for kind, objects, wanted in (
            ("r", "TABLES", self.roles.table_grants("")),
            ("S", "SEQUENCES", self.roles.sequence_grants()),
        ):
            actual = self.catalog.default_acl[kind]
            for grantee in ["PUBLIC", *(role.name for role in self.roles.members())]:
                have, want = actual.get(grantee, set()), wanted.get(grantee, frozenset())
                prefix = sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {}").format(owner, schema)
                if extra := have - want:
                    self.add(
                        sql.SQL("{} REVOKE {} ON {} FROM {}").format(
                            prefix, _privileges(extra), sql.SQL(objects), _grantee(grantee)
                        )
                    )
                if missing := want - have:
                    self.add(
                        sql.SQL("{} GRANT {} ON {} TO {}").format(
                            prefix, _privileges(missing), sql.SQL(objects), _grantee(grantee)
                        )
                    )

    def _qualified(self, name: str) -> sql.Composable:
        return sql.SQL("{}.{}").format(sql.Identifier(SCHEMA), sql.Identifier(name))


def check_configuration(roles: Roles, catalog: Catalog) -> None:
    names = [role.name for role in roles.all()]
    if len(set(names)) != len(names) or not all(names):
        raise RolesError(f"The five role names must be distinct and non-empty: {', '.join(names)}.")
    for role in roles.all():
        if role.name == catalog.current_user:
            raise RolesError(
                f"DB_{role.kind.upper()}_ROLE is {role.name}, the role running this command: run db_roles as a "
                "superuser (or an administrator role) that is none of questdb's roles."
            )
        if catalog.existing.get(role.name, {}).get("rolsuper"):
            raise RolesError(
                f"DB_{role.kind.upper()}_ROLE is {role.name}, a superuser: questdb does not strip an existing "
                "superuser of its powers. Choose another name."
            )


def plan(connection: psycopg.Connection, roles: Roles) -> list[Statement]:
    """Every statement that brings the roles, the database, the schema and its relations to the configuration."""
    catalog = Catalog(connection, roles)
    check_configuration(roles, catalog)
    planner = Planner(connection, roles, catalog)
    planner.plan_roles()
    planner.plan_database()
    planner.plan_schema()
    planner.plan_ownership()
    planner.plan_relation_grants()
    planner.plan_default_privileges()
    return planner.statements


def apply(connection: psycopg.Connection, roles: Roles, *, dry_run: bool = False) -> list[Statement]:
    """Plan and (unless dry_run) execute, in one transaction under an advisory lock; returns the statements."""
    with connection.transaction(force_rollback=dry_run):
        connection.execute("SELECT pg_advisory_xact_lock(%s)", [ROLES_LOCK_ID])
        statements = plan(connection, roles)
        if not dry_run:
            for statement in statements:
                connection.execute(statement.sql)
    return statements


def managed(connection: psycopg.Connection, roles: Roles) -> bool:
    """Whether this connection runs as the configured owner role: then it keeps its objects' grants itself."""
    row = connection.execute("SELECT current_user = %s", [roles.owner.name]).fetchone()
    return bool(row[0])


def apply_owner_grants(connection: psycopg.Connection, roles: Roles) -> tuple[list[Statement], list[str]]:
    """As the owner, after migrations: grants on the relations it owns (the identity tables among them).

    Returns the statements executed and the relations skipped because another role owns them.
    """
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", [ROLES_LOCK_ID])
        catalog = Catalog(connection, roles)
        planner = Planner(connection, roles, catalog)
        skipped = planner.plan_relation_grants(only_owned=True)
        planner.plan_default_privileges()
        for statement in planner.statements:
            connection.execute(statement.sql)
    return planner.statements, skipped


def migration_refusal(cursor) -> str | None:
    """The message that refuses migrations to a role without CREATE on the schema, or None when it may migrate."""
    cursor.execute(
        "SELECT current_user, coalesce(current_schema(), %s), "
        "has_schema_privilege(coalesce(current_schema(), %s), 'CREATE')",
        [SCHEMA, SCHEMA],
    )
    user, schema, can_create = cursor.fetchone()
    return None if can_create else MIGRATE_AS_OWNER.format(user=user, schema=schema)


def refuse_migrations_without_create(sender, using: str, **kwargs) -> None:
    """pre_migrate receiver: `migrate` as a role that cannot create tables stops with one clear line."""
    from django.core.management.base import CommandError
    from django.db import connections

    connection = connections[using]
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        message = migration_refusal(cursor)
    if message:
        raise CommandError(message)
