"""Count the SQL statements a benchmarked server sends, by database alias and kind.

bench/gunicorn_conf.py installs this in each gunicorn worker after the app has loaded. It wraps
Django's CursorWrapper, so every statement through Django (ORM, raw cursors, savepoints) counts;
the replica monitor's own psycopg connections do not. Counts go to a Prometheus counter in the
multiprocess directory, which the benchmark reads directly. The cost is one counter increment
per statement.
"""

from prometheus_client import Counter

STATEMENTS = Counter(
    "questdb_bench_sql_statements", "SQL statements sent through Django, by alias and kind.", ["alias", "kind"]
)


def statement_kind(sql: str) -> str:
    head = sql.lstrip()[:8].upper()
    if "pg_current_wal_lsn" in sql:
        return "wal_position"  # questdb's read of the primary's WAL position after a write, not a data read
    if head.startswith(("SELECT", "WITH")):
        return "locking_read" if " FOR UPDATE" in sql or " FOR NO KEY UPDATE" in sql else "read"
    if head.startswith(("INSERT", "UPDATE", "DELETE")):
        return "write"
    return "other"  # savepoints, SET, ...


def install() -> None:
    from django.db.backends import utils

    original = utils.CursorWrapper._execute_with_wrappers
    if getattr(original, "_bench_counted", False):
        return

    def counted(self, sql, params, many, executor):
        STATEMENTS.labels(self.db.alias, statement_kind(sql)).inc()
        return original(self, sql, params, many, executor)

    counted._bench_counted = True
    utils.CursorWrapper._execute_with_wrappers = counted
