"""The PostgreSQL backend questdb runs on: django-prometheus's (query metrics per alias), plus a cheaper
check of pooled connections.

psycopg_pool's check (CONN_HEALTH_CHECKS) sends an empty query before lending a connection: one round
trip on every request that touches the database. A healthy idle connection has nothing to read, while
a server restart, a failover or pg_terminate_backend leaves a termination notice or end-of-file on its
socket. So this backend looks at the socket (no round trip) and sends the empty query only when
something is there; a connection that fails is closed, returned (the pool then replaces it) and
another is borrowed. Turned on by the `POOL_CHECK` key of a database's settings (DB_HEALTH_CHECKS).
"""

import select

from django_prometheus.db.backends.postgresql import base
from psycopg import Error as PsycopgError
from psycopg_pool import ConnectionPool


def dropped_while_idle(connection) -> bool:
    """True when an idle connection can no longer be used; costs no round trip while it can."""
    if connection.closed or connection.broken:
        return True
    poller = select.poll()  # not select(): descriptors above 1024 are normal in a busy worker
    poller.register(connection.fileno(), select.POLLIN)
    if not poller.poll(0):
        return False
    try:
        ConnectionPool.check_connection(connection)  # something arrived: let a real query decide
    except PsycopgError:
        return True
    return False


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        connection = super().get_new_connection(conn_params)
        if self.pool is None or not self.settings_dict.get("POOL_CHECK"):
            return connection
        for _ in range(self.pool.max_size):  # after a restart every idle connection may be gone
            if not dropped_while_idle(connection):
                break
            connection.close()
            self.pool.putconn(connection)  # a closed connection is discarded and replaced
            connection = super().get_new_connection(conn_params)
        return connection
