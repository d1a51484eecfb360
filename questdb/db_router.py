"""Send writes to the primary and reads to a healthy, caught-up replica.

The rules (see questdb.routing for the per-request part):
- writes, `select_for_update` and every read inside an open transaction use the primary;
- other reads use a replica that is reachable, within DB_REPLICA_MAX_LAG, and has
  replayed the caller's consistency token, else the primary;
- migrations run on the primary only.
"""

from django.db import DEFAULT_DB_ALIAS

from questdb import routing
from questdb.databases import REPLICA_PREFIX


def _ours(alias: str | None) -> bool:
    return alias == DEFAULT_DB_ALIAS or bool(alias and alias.startswith(REPLICA_PREFIX))


class PrimaryReplicaRouter:
    def db_for_read(self, model, **hints) -> str:
        return routing.choose_read_alias()

    def db_for_write(self, model, **hints) -> str:
        routing.note_write()
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints) -> bool:
        # Replicas hold the primary's rows, so objects read from any of them may relate.
        return _ours(obj1._state.db) and _ours(obj2._state.db)

    def allow_migrate(self, db, app_label, model_name=None, **hints) -> bool:
        return db == DEFAULT_DB_ALIAS
