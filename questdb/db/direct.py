"""Direct database connections for questdb's operations commands (migrate_locked, wait_for_db, backup, restore).

The commands open their own short-lived psycopg connections instead of Django's pooled
ones: an advisory lock or an exported snapshot must stay on one known session.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
from django.db.utils import load_backend
from psycopg import sql

# What Django's backend adds for its own cursors; a direct connection uses psycopg's plain ones.
_DJANGO_CURSOR_PARAMS = ("cursor_factory", "context")

# Relations that make a database "not empty" for a restore, and tables whose rows are counted.
_USER_SCHEMAS = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' "
_USER_SCHEMAS += "AND n.nspname NOT LIKE 'pg\\_temp\\_%'"
PG_TABLES_SQL = f"""
    SELECT n.nspname, c.relname
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND {_USER_SCHEMAS}
    ORDER BY 1, 2
"""
PG_RELATIONS_SQL = f"""
    SELECT count(*)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND {_USER_SCHEMAS}
"""


def is_postgresql(settings_dict: dict) -> bool:
    engine = settings_dict.get("ENGINE", "")
    return "postgresql" in engine or "postgis" in engine


def is_sqlite(settings_dict: dict) -> bool:
    return "sqlite3" in settings_dict.get("ENGINE", "") or "spatialite" in settings_dict.get("ENGINE", "")


def describe(settings_dict: dict, dbname: str | None = None) -> str:
    """`user@host:port/name` (never the password), or the SQLite file."""
    name = dbname or settings_dict.get("NAME")
    if not is_postgresql(settings_dict):
        return f"sqlite:{name}"
    user = settings_dict.get("USER") or ""
    host = settings_dict.get("HOST") or "localhost"
    port = settings_dict.get("PORT") or 5432
    return f"{user + '@' if user else ''}{host}:{port}/{name}"


def pg_connect_kwargs(settings_dict: dict, *, application_name: str, dbname: str | None = None) -> dict:
    """libpq parameters for a database, as Django's own backend computes them (OPTIONS included)."""
    backend = load_backend(settings_dict["ENGINE"])
    kwargs = backend.DatabaseWrapper(settings_dict).get_connection_params()
    for name in _DJANGO_CURSOR_PARAMS:
        kwargs.pop(name, None)
    kwargs["application_name"] = application_name
    if dbname:
        kwargs["dbname"] = dbname
    return kwargs


def pg_connect(
    settings_dict: dict,
    *,
    application_name: str,
    dbname: str | None = None,
    autocommit: bool = True,
    connect_timeout: float | None = None,
) -> psycopg.Connection:
    kwargs = pg_connect_kwargs(settings_dict, application_name=application_name, dbname=dbname)
    if connect_timeout is not None:
        kwargs["connect_timeout"] = max(1, round(connect_timeout))
    connection = psycopg.connect(**kwargs, autocommit=autocommit)
    # As Django does for OPTIONS["assume_role"]: log in as a member, then act as the role.
    if assume_role := (settings_dict.get("OPTIONS") or {}).get("assume_role"):
        connection.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(assume_role)))
        if not autocommit:
            connection.commit()
    return connection


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else error.__class__.__name__


def pg_row_counts(connection: psycopg.Connection) -> list[dict]:
    """Exact row counts of every table in the user schemas, in the connection's snapshot."""
    tables = connection.execute(PG_TABLES_SQL).fetchall()
    counts = []
    for schema, name in tables:
        query = sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(name))
        counts.append({"schema": schema, "name": name, "rows": connection.execute(query).fetchone()[0]})
    return counts


def pg_relation_count(connection: psycopg.Connection) -> int:
    return connection.execute(PG_RELATIONS_SQL).fetchone()[0]


def sqlite_row_counts(path: str | Path) -> list[dict]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        names = [
            row[0]
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
                "ORDER BY name"
            )
        ]
        return [
            {
                "schema": "main",
                "name": name,
                "rows": connection.execute(f'SELECT count(*) FROM "{name.replace(chr(34), chr(34) * 2)}"').fetchone()[
                    0
                ],
            }
            for name in names
        ]
