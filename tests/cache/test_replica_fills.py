"""Cache fills and the replica: a fill never comes from a replica behind the invalidating write."""

import pytest

from characters.models import Character
from questdb.db import replicas
from tests.db.helpers import connect, wait_for_replay

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def test_after_a_write_the_fill_skips_the_replica_that_has_not_replayed_it(api, make_user, settings):
    settings.DB_REPLICA_MAX_LAG = 60  # the paused standby stays "healthy": only the stamp keeps it out
    character = Character.objects.create(user=make_user(), name="Stamped")
    wait_for_replay()
    replicas.monitor.check_now()
    path = f"/api/v1/characters/{character.id}/"
    assert api.get(path).json()["money"] == 0  # filled from the standby

    with connect("replica_1") as standby:
        standby.execute("SELECT pg_wal_replay_pause()")
    try:
        assert api.patch(path, {"money": 9}, content_type="application/json").status_code == 200
        replicas.monitor.check_now()
        assert replicas.monitor.choose() == "replica_1"  # plain reads would still go to the standby...
        assert api.get(path).json()["money"] == 9  # ...but the fill after the invalidation does not
        assert api.get(path).json()["money"] == 9  # and what it cached is the new value
    finally:
        with connect("replica_1") as standby:
            standby.execute("SELECT pg_wal_replay_resume()")
        wait_for_replay()
