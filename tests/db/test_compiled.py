import uuid

import pytest
from django.db import connection

from characters.models import Character
from questdb.db.compiled import Compiled

pytestmark = pytest.mark.django_db


def _owned_or_named(*, owner_id, name):
    query = Character.objects.filter(user_id=owner_id) | Character.objects.filter(name=name, user_id=owner_id)
    return query.values_list("id").query.sql_with_params()


def test_every_stand_in_is_replaced_by_the_calls_value_and_constants_stay():
    statement = Compiled(
        _owned_or_named,
        owner_id=(uuid.UUID(int=7), Character._meta.get_field("user")),
        name=("\x01stand-in", Character._meta.get_field("name")),
    )
    owner = uuid.uuid4()
    sql, params = statement.bind(owner_id=owner, name="Hero")
    expected_sql, expected = _owned_or_named(owner_id=owner, name="Hero")
    assert sql == expected_sql
    assert list(params) == list(expected)
    assert params[0] == params[2] != _prepared_stand_in()


def test_stand_ins_that_prepare_alike_are_refused():
    field = Character._meta.get_field("name")
    statement = Compiled(_owned_or_named, owner_id=("same", field), name=("same", field))
    with pytest.raises(ValueError, match="differ"):
        statement.bind(owner_id="a", name="b")


def _prepared_stand_in():
    return Character._meta.get_field("user").get_db_prep_value(uuid.UUID(int=7), connection)
