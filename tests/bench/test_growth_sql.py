"""bench.growth_sql times the lookups' own statements against two databases, with a control arm."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from bench import dataset, growth_sql
from characters.models import Character
from sessions_app.models import Session

pytestmark = pytest.mark.django_db(transaction=True)


def test_each_lookup_statement_is_timed_on_both_databases_and_the_control(make_user, tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("the statements are timed on PostgreSQL")
    for number in range(3):
        user = make_user()
        Character.objects.create(user=user, name=f"ch{number}")
        Session.objects.create(user=user, token=f"growth-{number}", expires_at=timezone.now() + timedelta(days=1))
    database = connection.settings_dict["NAME"]
    dataset.write_samples(database, tmp_path / database / "samples")

    result = growth_sql.measure(database, database, rounds=2, per_round=2, port=5432, samples_root=tmp_path)

    assert [row["lookup"] for row in result["lookups"]] == list(growth_sql.LOOKUPS)
    for row in result["lookups"]:
        p50 = row["p50_ms"]
        assert set(p50) == {"small", "large", "control"}
        assert all(value > 0 for value in p50.values())
        assert row["growth"] == pytest.approx(p50["large"] / p50["small"], rel=0.01)
        assert row["control"] == pytest.approx(p50["control"] / p50["small"], rel=0.01)
        assert row["buffers"]["small"] >= 1  # the plan read at least the index


def test_a_key_that_finds_no_row_is_an_error(tmp_path, db):
    if connection.vendor != "postgresql":
        pytest.skip("the statements are timed on PostgreSQL")
    statement = growth_sql._statements()["user_id"]
    with connection.cursor() as cursor, pytest.raises(RuntimeError, match="no row"):
        growth_sql._time(cursor.connection, statement, ["00000000-0000-4000-8000-000000000000"])
