"""Pooled connections the server dropped while idle are replaced, not lent out, and healthy ones cost no query."""

import time

import psycopg
import pytest
from django.conf import settings
from django.db import connections

from questdb.db.postgresql.base import dropped_while_idle

pytestmark = pytest.mark.django_db(transaction=True)


def _admin() -> psycopg.Connection:
    return psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres", autocommit=True)


def _terminate_idle_backends(database: str) -> int:
    with _admin() as admin:
        terminated = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND state = 'idle' AND backend_type = 'client backend'",
            [database],
        ).fetchall()
    time.sleep(0.2)  # let the termination notices arrive
    return len(terminated)


def test_writes_succeed_after_the_server_dropped_every_idle_pooled_connection(api, make_user):
    assert settings.DATABASES["default"]["POOL_CHECK"] is True
    user = make_user()
    created = api.post(
        "/api/v1/characters/", {"user": str(user.id), "name": "Survivor"}, content_type="application/json"
    )
    assert created.status_code == 201
    connections.close_all()  # every connection back in the pool, idle
    assert _terminate_idle_backends(connections["default"].settings_dict["NAME"]) >= 1
    for money in range(3):
        path = f"/api/v1/characters/{created.json()['id']}/"
        assert api.patch(path, {"money": money}, content_type="application/json").status_code == 200


def test_a_healthy_connection_is_checked_without_a_query_and_a_dropped_one_is_refused():
    with _admin() as conn, _admin() as admin:
        conn.execute("SELECT 'last statement'")
        assert dropped_while_idle(conn) is False
        last = admin.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [conn.info.backend_pid]).fetchone()
        assert last == ("SELECT 'last statement'",)  # the check sent nothing
        admin.execute("SELECT pg_terminate_backend(%s)", [conn.info.backend_pid])
        time.sleep(0.2)
        assert dropped_while_idle(conn) is True


def test_a_connection_with_an_unread_notification_is_still_usable():
    with _admin() as conn, _admin() as other:
        conn.execute("LISTEN questdb_probe")
        other.execute("NOTIFY questdb_probe")
        time.sleep(0.2)  # the notification waits on conn's socket: readable, yet healthy
        assert dropped_while_idle(conn) is False
        assert conn.execute("SELECT 1").fetchone() == (1,)
