"""Every pattern rule in Python agrees with the database's check constraint on the same strings.

Each candidate goes through the Python rule and through a real INSERT; both must accept or
both refuse. (Python's `$` matches before a final newline, PostgreSQL's does not.)
"""

import pytest
from django.core.exceptions import ValidationError
from django.db import DataError, IntegrityError, connection, transaction

from accounts.models import User
from characters import services
from characters.models import Character
from questdb.errors import InvalidInput

pytestmark = pytest.mark.django_db

COMMON = ["", "ab", "abc", "abc\n", "\nabc", "ab\nc", "abc ", " abc", "ab-c", "ab\tc", "abç", "abİ", "ab\u212a", "ab\r"]
USERNAMES = [*COMMON, "a.b", "a_b", "1abc", "a" * 30, "a" * 30 + "\n", "a" * 31, "a" * 29 + "\n"]
NAMES = [*COMMON, "_ab", "1ab", "Hero", "Hero\n", "a" * 16, "a" * 16 + "\n", "a" * 17, "a" * 15 + "\n", "a.b"]


def _database_accepts(sql: str, params: list) -> bool:
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, params)
            transaction.set_rollback(True)
        return True
    except (IntegrityError, DataError):
        return False


def _field_accepts(model, field: str, value: str) -> bool:
    try:
        for validator in model._meta.get_field(field).validators:  # run_validators() skips "": call each
            validator(value)
        return True
    except ValidationError:
        return False


def _python_accepts_username(username: str) -> bool:
    return _field_accepts(User, "username", username)


def _python_accepts_name(name: str) -> bool:
    try:
        services.validate_name(name)
    except InvalidInput:
        return False
    assert _field_accepts(Character, "name", name), f"the model field and the service disagree on {name!r}"
    return True


@pytest.mark.parametrize("username", USERNAMES)
def test_the_username_rule_agrees_with_the_database(username):
    in_database = _database_accepts(
        "INSERT INTO users (username, email) VALUES (%s, %s)", [username, f"{len(username)}@example.com"]
    )
    assert _python_accepts_username(username) == in_database


@pytest.mark.parametrize("name", NAMES)
def test_the_character_name_rule_agrees_with_the_database(name, make_user):
    owner = make_user()
    in_database = _database_accepts(
        "INSERT INTO characters (user_id, name, stats, inventory, skills, looks, position) "
        "VALUES (%s, %s, '{}', '[]', '[]', '{}', '{}')",
        [owner.id, name],
    )
    assert _python_accepts_name(name) == in_database
