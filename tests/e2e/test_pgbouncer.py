"""questdb behind PgBouncer in transaction pooling mode (psycopg pool in front, no prepared statements)."""

import shutil
import subprocess

import psycopg
import pytest
from django.db import connections

from tests.db.helpers import wait_until
from tests.e2e.conftest import free_port, gunicorn

pytestmark = [pytest.mark.django_db(transaction=True, databases="__all__"), pytest.mark.slow]


@pytest.fixture
def pgbouncer(tmp_path):
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    port = free_port()
    (tmp_path / "users.txt").write_text('"postgres" ""\n')
    (tmp_path / "pgbouncer.ini").write_text(
        "[databases]\n* = host=127.0.0.1 port=5432\n"
        f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {tmp_path}/users.txt\nadmin_users = postgres\n"
        "pool_mode = transaction\ndefault_pool_size = 4\nmax_client_conn = 200\n"
        "ignore_startup_parameters = application_name\n"
    )
    shutil.chown(tmp_path, "postgres")
    for path in tmp_path.iterdir():
        shutil.chown(path, "postgres")
    process = subprocess.Popen([binary, "-u", "postgres", str(tmp_path / "pgbouncer.ini")], stdout=subprocess.DEVNULL)

    def accepting() -> bool:
        try:
            psycopg.connect(host="127.0.0.1", port=port, dbname="pgbouncer", user="postgres").close()
        except psycopg.Error:
            return False
        return True

    try:
        assert wait_until(accepting, timeout=10)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def _transactions_through(port: int, dbname: str) -> int:
    with psycopg.connect(host="127.0.0.1", port=port, dbname="pgbouncer", user="postgres", autocommit=True) as admin:
        cursor = admin.cursor()
        cursor.execute("SHOW STATS")
        columns = [column.name for column in cursor.description]
        rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    return sum(int(row["total_xact_count"]) for row in rows if row["database"] == dbname)


def test_the_api_works_through_pgbouncer_in_transaction_mode(http_session, make_user, pgbouncer):
    dbname = connections["default"].settings_dict["NAME"]
    owner = make_user()
    database_url = f"postgres://postgres@127.0.0.1:{pgbouncer}/{dbname}"
    with gunicorn(DATABASE_URL=database_url, DB_READ_HOST="", REDIS_URL="", GUNICORN_THREADS="8") as base:
        created = http_session.post(f"{base}/api/v1/characters/", json={"user": str(owner.id), "name": "Bouncer"})
        assert created.status_code == 201
        character = created.json()["id"]
        for money in range(1, 21):
            patched = http_session.patch(f"{base}/api/v1/characters/{character}/", json={"money": money})
            assert patched.status_code == 200
            assert patched.headers["X-Consistency-Token"]
            assert http_session.get(f"{base}/api/v1/characters/{character}/").json()["money"] == money
        assert http_session.get(f"{base}/readyz").json()["status"] == "ready"
    assert _transactions_through(pgbouncer, dbname) >= 60
