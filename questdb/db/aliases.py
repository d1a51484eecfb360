"""Build Django's DATABASES from the environment: the primary plus one alias per replica.

Each PostgreSQL alias gets its own psycopg pool (one pool per process per alias);
the README's "Connection budget" section explains how the sizes add up.
"""

from pathlib import Path
from urllib.parse import quote

import environ

PRIMARY = "default"
REPLICA_PREFIX = "replica_"


def _pool_options(env: environ.Env) -> dict:
    return {
        "min_size": env.int("DB_MIN_CONNECTIONS", default=5),
        "max_size": env.int("DB_MAX_CONNECTIONS", default=20),
        # Seconds a request waits for a free connection before a 503.
        "timeout": env.int("DB_CONNECTION_TIMEOUT", default=20000) / 1000,
        # Idle connections above min_size are closed after this many seconds.
        "max_idle": env.int("DB_IDLE_TIMEOUT", default=30000) / 1000,
    }


def _primary_url(env: environ.Env, default_sqlite_path: Path) -> str:
    if env.str("DATABASE_URL", default=""):
        return env.str("DATABASE_URL")
    if env.str("DB_HOST", default=""):
        user = quote(env.str("DB_USER", default="postgres"))
        password = env.str("DB_PASSWORD", default="")
        auth = f"{user}:{quote(password)}" if password else user
        port = env.int("DB_PORT", default=5432)
        return f"postgres://{auth}@{env.str('DB_HOST')}:{port}/{env.str('DB_NAME', default='questdb')}"
    return f"sqlite:///{default_sqlite_path}"


def _replica_configs(env: environ.Env, primary: dict) -> list[dict]:
    urls = env.list("DATABASE_REPLICA_URLS", default=[])
    if urls:
        return [environ.Env.db_url_config(url) for url in urls]
    hosts = env.list("DB_READ_HOST", default=[])
    # The replicas' readers may log in as another role (the read-only one) than the primary's.
    credentials = {}
    if env.str("DB_READ_USER", default=""):
        credentials = {"USER": env.str("DB_READ_USER"), "PASSWORD": env.str("DB_READ_PASSWORD", default="")}
    configs = []
    for entry in hosts:
        host, _, port = entry.partition(":")
        port = int(port) if port else primary.get("PORT") or 5432
        configs.append({**primary, **credentials, "HOST": host, "PORT": port})
    return configs


def _finish(config: dict, env: environ.Env, *, connect_timeout: float) -> dict:
    config = dict(config)
    config.pop("OPTIONS", None)
    if config["ENGINE"] == "django.db.backends.sqlite3":
        return config
    # Django's PostgreSQL backend, counting queries and errors per alias for /metrics, with a pool check
    # that costs no round trip (questdb/db/postgresql/base.py).
    config["ENGINE"] = "questdb.db.postgresql"
    # Pooled connections: CONN_MAX_AGE must stay 0, the pool keeps them open.
    config["CONN_MAX_AGE"] = 0
    # Each connection is checked before it is lent, so one broken by a server restart is replaced
    # instead of failing a request. The backend's check replaces psycopg_pool's (an empty query).
    config["CONN_HEALTH_CHECKS"] = False
    config["POOL_CHECK"] = env.bool("DB_HEALTH_CHECKS", default=True)
    config["OPTIONS"] = {
        "pool": _pool_options(env),
        "application_name": env.str("DB_APPLICATION_NAME", default="questdb"),
        "connect_timeout": max(1, round(connect_timeout)),
    }
    return config


def build_databases(env: environ.Env, *, default_sqlite_path: Path) -> dict:
    primary = environ.Env.db_url_config(_primary_url(env, default_sqlite_path))
    primary_connect_timeout = env.int("DB_CONNECTION_TIMEOUT", default=20000) / 1000
    databases = {PRIMARY: _finish(primary, env, connect_timeout=primary_connect_timeout)}
    if databases[PRIMARY]["ENGINE"] == "django.db.backends.sqlite3":
        return databases
    replica_timeout = env.float("DB_REPLICA_CONNECT_TIMEOUT", default=1.0)
    for number, replica in enumerate(_replica_configs(env, primary), start=1):
        config = _finish(replica, env, connect_timeout=replica_timeout)
        # A dead replica must cost one short timeout, not DB_CONNECTION_TIMEOUT.
        config["OPTIONS"]["pool"]["timeout"] = replica_timeout
        # The test runner creates the test database on the primary only; the
        # replica sees it through replication (see tests/conftest.py).
        config["TEST"] = {"NAME": databases[PRIMARY].get("TEST", {}).get("NAME")}
        databases[f"{REPLICA_PREFIX}{number}"] = config
    return databases


def connect_as(alias: str, url: str) -> None:
    """Point `alias` at another role's URL (DATABASE_OWNER_URL, BACKUP_DATABASE_URL) for the rest of the process.

    Operations commands call it before they open any connection; an empty URL keeps the alias as it is.
    """
    if not url:
        return
    from django.db import connections

    connection = connections[alias]
    connection.close()
    if hasattr(connection, "close_pool"):
        connection.close_pool()
    credentials = role_credentials(url)
    assume_role = credentials.pop("ASSUME_ROLE")
    connection.settings_dict.update(credentials)
    options = connection.settings_dict.setdefault("OPTIONS", {})
    options.pop("assume_role", None)
    # A one-shot command needs no pool (and Django's pool loses connections that SET ROLE on open).
    options.pop("pool", None)
    if assume_role:
        options["assume_role"] = assume_role


def role_credentials(url: str) -> dict:
    """NAME, USER, PASSWORD, HOST, PORT of a database URL, and its `?assume_role=` (SET ROLE after login)."""
    config = environ.Env.db_url_config(url)
    credentials = {key: config.get(key, "") for key in ("NAME", "USER", "PASSWORD", "HOST", "PORT")}
    credentials["ASSUME_ROLE"] = (config.get("OPTIONS") or {}).get("assume_role", "")
    return credentials
