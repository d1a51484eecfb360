"""The benchmark database: create, migrate, seed in PostgreSQL, and write the key samples wrk reads.

Seeding runs as `INSERT ... SELECT generate_series(...)` inside PostgreSQL, in batches so that a
progress line can follow it. Ids are deterministic UUIDs (v4 layout) derived from each row's
ordinal, so characters and sessions can name their owner without a lookup:
- users 1..N; the first 1% (at least one) own 10 characters each: the list scenario's users;
- characters 1..KN (K = `--characters-per-user`, default 3); after those, the others are dealt round-robin to the
  remaining users (K-1 to K each);
- sessions 1..N, one live session per user (expiring in 30 days).
"""

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
LIST_CHARACTERS = 10


def _uuid(prefix: str, ordinal: str) -> str:
    """SQL for a deterministic UUID with the version-4 layout, from a prefix and an ordinal expression."""
    return f"(overlay(overlay(md5('{prefix}' || {ordinal}) placing '4' from 13) placing '8' from 17))::uuid"


@dataclass(frozen=True)
class Shape:
    users: int
    characters_per_user: int = 3

    @property
    def list_users(self) -> int:
        return max(1, self.users // 100)

    @property
    def characters(self) -> int:
        return self.characters_per_user * self.users

    @property
    def sessions(self) -> int:
        return self.users


USERS_SQL = f"""
INSERT INTO users (id, username, display_username, name, email, email_verified, image, role, created_at, updated_at)
SELECT {_uuid("u", "g")}, 'player' || g, 'Player' || g, 'Player ' || g, 'player' || g || '@example.com',
       g %% 3 = 0, NULL, 'user', ts, ts
FROM generate_series(%(low)s::bigint, %(high)s::bigint) AS g,
     LATERAL (SELECT now() - make_interval(secs => (%(total)s - g)::double precision) AS ts) AS t
"""

CHARACTERS_SQL = f"""
INSERT INTO characters (id, user_id, slot, name, money, stats, inventory, skills, looks, position, is_active,
                        deleted_at, purge_at, created_at, updated_at)
SELECT {_uuid("c", "k")}, {_uuid("u", "o.owner")}, o.slot, 'ch' || k, (k * 7919) %% 1000000,
       jsonb_build_object('level', 1 + k %% 60, 'experience', (k * 13) %% 100000, 'strength', 10 + k %% 50,
                          'dexterity', 10 + k %% 40, 'intelligence', 10 + k %% 45, 'vitality', 10 + k %% 35,
                          'hp', 100 + k %% 500, 'mp', 50 + k %% 300),
       (SELECT jsonb_agg(jsonb_build_object('slot', s, 'item_id', 1000 + (k * (s + 1)) %% 5000,
                                            'quantity', 1 + (k + s) %% 20) ORDER BY s)
        FROM generate_series(0, 4) AS s),
       (SELECT jsonb_agg(jsonb_build_object('skill_id', 100 + s * 10 + k %% 10, 'level', 1 + (k + s) %% 10)
                         ORDER BY s)
        FROM generate_series(0, 2) AS s),
       jsonb_build_object('race', k %% 4, 'gender', k %% 2, 'face', 1 + k %% 10, 'hair', 1 + k %% 12),
       jsonb_build_object('map_id', 1 + k %% 20, 'x', (k %% 1000) + 0.5, 'y', (k %% 777) + 0.25, 'z', 0.0),
       true, NULL, NULL, ts, ts
FROM generate_series(%(low)s::bigint, %(high)s::bigint) AS k,
     LATERAL (SELECT CASE WHEN k <= %(listed)s THEN (k - 1) / {LIST_CHARACTERS} + 1
                          ELSE %(list_users)s + 1 + (k - %(listed)s - 1) %% (%(users)s - %(list_users)s)
                     END AS owner,
                     CASE WHEN k <= %(listed)s THEN (k - 1) %% {LIST_CHARACTERS}
                          ELSE (k - %(listed)s - 1) / (%(users)s - %(list_users)s)
                     END AS slot) AS o,
     LATERAL (SELECT now() - make_interval(secs => (%(total)s - k)::double precision / 1000) AS ts) AS t
"""

SESSIONS_SQL = f"""
INSERT INTO sessions (id, token, user_id, expires_at, ip_address, user_agent, created_at, updated_at)
SELECT {_uuid("s", "g")}, encode(sha256(('questdb-bench-session-' || g)::bytea), 'hex'), {_uuid("u", "g")},
       now() + interval '30 days', '10.0.' || (g / 256) %% 256 || '.' || g %% 256, 'questdb-bench/1.0', now(), now()
FROM generate_series(%(low)s::bigint, %(high)s::bigint) AS g
"""

# Sample files: one key a line, in a fixed pseudo-random order (the warm hot set is each file's head).
SAMPLES_SQL = {
    "user_ids": "SELECT id::text FROM users ORDER BY md5('a' || id::text)",
    "usernames": "SELECT username FROM users ORDER BY md5('b' || id::text)",
    "emails": "SELECT email FROM users ORDER BY md5('c' || id::text)",
    "character_ids": "SELECT id::text FROM characters WHERE name LIKE 'ch%' ORDER BY md5('d' || id::text)",
    "list_user_ids": f"""
        SELECT user_id::text FROM characters GROUP BY user_id HAVING count(*) >= {LIST_CHARACTERS}
        ORDER BY md5('e' || user_id::text)""",
    "create_user_ids": f"""
        SELECT u.id::text FROM users u LEFT JOIN characters c ON c.user_id = u.id
        GROUP BY u.id HAVING count(c.id) < {LIST_CHARACTERS} ORDER BY md5('f' || u.id::text)""",
    "session_tokens": "SELECT token FROM sessions ORDER BY md5('g' || id::text)",
    "session_ids": "SELECT id::text FROM sessions ORDER BY md5('h' || id::text)",
}


def admin_dsn() -> str:
    return "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


def dsn(database: str, port: int = 5432) -> str:
    return f"host=127.0.0.1 port={port} user=postgres dbname={database}"


def ensure_database(database: str, *, fresh: bool) -> bool:
    """Create the database (dropping it first when `fresh`); True if it was created."""
    with psycopg.connect(admin_dsn(), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone() is not None
        if exists and fresh:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(database)))
            exists = False
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        return not exists


def migrate(env: dict) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
        stdin=subprocess.DEVNULL,
    )


def create_api_key(env: dict, name: str) -> str:
    """A write key for the benchmark, created with questdb's own command (older ones of that name go)."""
    with psycopg.connect(dsn(env["BENCH_DATABASE"]), autocommit=True) as conn:
        conn.execute("DELETE FROM api_keys WHERE name = %s", [name])
    out = subprocess.run(
        [sys.executable, "manage.py", "create_api_key", name, "--scope", "write"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    return out.stdout.strip().splitlines()[-1]


class Progress:
    """A one-line progress display: rewritten in place on a terminal, a line per step otherwise."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.started = label, total, time.monotonic()
        self.tty = sys.stdout.isatty()

    def update(self, done: int) -> None:
        width = 30
        filled = int(width * done / self.total) if self.total else width
        bar = "#" * filled + "." * (width - filled)
        rate = done / max(time.monotonic() - self.started, 1e-6)
        line = f"  {self.label:<11} [{bar}] {done:>10,}/{self.total:,} ({rate:,.0f} rows/s)"
        if self.tty:
            print("\r" + line, end="" if done < self.total else "\n", flush=True)
        else:
            print(line, flush=True)


def _insert(conn, label: str, statement: str, total: int, params: dict, batch: int) -> None:
    progress = Progress(label, total)
    progress.update(0)
    for low in range(1, total + 1, batch):
        high = min(total, low + batch - 1)
        with conn.transaction():
            conn.execute(statement, {**params, "low": low, "high": high, "total": total})
        progress.update(high)


SEEDED_TABLES = ("users", "characters", "sessions")


def _drop_secondary_indexes(conn, tables: tuple[str, ...]) -> list[str]:
    """Drop the tables' indexes that back no constraint and return their definitions, to build after the rows
    are in (as a restore does): filling a random-UUID btree row by row slows by an order of magnitude once the
    index outgrows shared_buffers. Primary keys and unique constraints stay: foreign keys need them."""
    rows = conn.execute(
        """
        SELECT index.relname, pg_get_indexdef(i.indexrelid)
        FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid JOIN pg_class index ON index.oid = i.indexrelid
        WHERE t.relname = ANY(%s) AND t.relnamespace = 'public'::regnamespace
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
        """,
        [list(tables)],
    ).fetchall()
    for name, _definition in rows:
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
    return [definition for _name, definition in rows]


def seed(database: str, shape: Shape) -> float:
    """Empty the three tables and fill them; returns the seconds it took.

    The rows go in as a restore's would, with the tables' triggers off (`session_replication_role`): change
    capture and the audit trail would have written a row per seeded row, and the consumer would still be
    draining millions of them while a large dataset's scenarios run. The caller asks for a cache reset after.
    """
    started = time.monotonic()
    params = {
        "users": shape.users,
        "list_users": shape.list_users,
        "listed": shape.list_users * LIST_CHARACTERS,
    }
    batch = max(1000, min(shape.users // 10, 100_000))
    with psycopg.connect(dsn(database), autocommit=True) as conn:
        conn.execute("TRUNCATE characters, sessions, account, verification, users")
        conn.execute("SET session_replication_role = replica")
        conn.execute("SET synchronous_commit = off")  # a lost seed is seeded again
        conn.execute("SET maintenance_work_mem = '1GB'")
        indexes = _drop_secondary_indexes(conn, SEEDED_TABLES)
        _insert(conn, "users", USERS_SQL, shape.users, params, batch)
        _insert(conn, "characters", CHARACTERS_SQL, shape.characters, params, batch * shape.characters_per_user)
        _insert(conn, "sessions", SESSIONS_SQL, shape.sessions, params, batch)
        print(f"  building {len(indexes)} indexes ...", flush=True)
        for definition in indexes:
            conn.execute(definition)
        conn.execute("RESET session_replication_role")
        print("  vacuum analyze ...", flush=True)
        for table in ("users", "characters", "sessions"):
            conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(table)))
    return time.monotonic() - started


def matches(database: str, shape: Shape) -> bool:
    """Whether the tables hold exactly a seeded dataset of this shape (so seeding can be skipped)."""
    with psycopg.connect(dsn(database)) as conn:
        try:
            users, characters, sessions = conn.execute(
                "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM characters WHERE name LIKE 'ch%'),"
                " (SELECT count(*) FROM sessions)"
            ).fetchone()
        except psycopg.errors.UndefinedTable:
            return False
    return (users, characters, sessions) == (shape.users, shape.characters, shape.sessions)


def delete_created_characters(database: str, prefix: str) -> int:
    """Remove characters the create scenarios added, so each server starts from the same data."""
    with psycopg.connect(dsn(database), autocommit=True) as conn:
        return conn.execute("DELETE FROM characters WHERE name LIKE %s", [prefix + "%"]).rowcount


def write_samples(database: str, directory: Path) -> dict[str, int]:
    directory.mkdir(parents=True, exist_ok=True)
    counts = {}
    with psycopg.connect(dsn(database)) as conn:
        for name, query in SAMPLES_SQL.items():
            rows = [row[0] for row in conn.execute(query)]
            (directory / f"{name}.txt").write_text("\n".join(rows) + "\n")
            counts[name] = len(rows)
    return counts


def wait_for_replay(timeout: int = 180) -> bool:
    """Wait until the hot standby has replayed the seed; False (with a warning) when there is no standby."""
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "standby.sh"), "wait-replay"],
        env={**os.environ, "WAIT_TIMEOUT": str(timeout)},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        print(f"  warning: standby did not confirm replay: {(result.stdout + result.stderr).strip()}", flush=True)
        return False
    return True


def server_versions() -> dict:
    versions = {}
    for name, port in (("postgresql_primary", 5432), ("postgresql_standby", 5433)):
        try:
            with psycopg.connect(dsn("postgres", port), connect_timeout=3) as conn:
                versions[name] = conn.execute("SHOW server_version").fetchone()[0]
        except psycopg.Error:
            versions[name] = None
    return versions
