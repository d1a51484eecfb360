import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from characters.models import Character
from questdb.db.compiled import Compiled, instance_loader
from sessions_app.models import Session

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


def test_a_loaded_instance_equals_the_orms_with_its_related_one_attached(make_user, django_assert_num_queries):
    user = make_user(banned=True, ban_reason="spam")
    session = Session.objects.create(
        user=user, token="a-token", expires_at=timezone.now() + timedelta(hours=1), ip_address="10.0.0.1"
    )
    expected = Session.objects.select_related("user").get(id=session.id)
    sql, params = Session.objects.select_related("user").filter(id=session.id).query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    loaded = instance_loader(Session, related="user")(row)
    with django_assert_num_queries(0):
        assert loaded.user.username == expected.user.username
    for left, right in ((loaded, expected), (loaded.user, expected.user)):
        for field in type(right)._meta.concrete_fields:
            assert getattr(left, field.attname) == getattr(right, field.attname), field.name
    assert not loaded._state.adding
    assert loaded._state.db == "default"
    with pytest.raises(ValueError, match="columns"):
        instance_loader(Session, related="user")((*row, None))
