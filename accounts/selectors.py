from accounts.models import User
from questdb.errors import NotFound
from questdb.identifiers import parse_uuid


def user_not_found() -> NotFound:
    return NotFound("No such user.", code="user_not_found")


def user_get(*, user_id) -> User:
    user_uuid = parse_uuid(user_id)
    user = User.objects.filter(id=user_uuid).first() if user_uuid else None
    if user is None:
        raise user_not_found()
    return user


def user_get_many(*, user_ids) -> list[User]:
    """The users among `user_ids` (in no particular order); malformed ids find nothing."""
    wanted = [uuid for uuid in map(parse_uuid, user_ids) if uuid]
    return list(User.objects.filter(id__in=wanted)) if wanted else []


def user_get_by_username(*, username: str) -> User:
    user = User.objects.with_username(username).first()
    if user is None:
        raise user_not_found()
    return user


def user_get_by_email(*, email: str) -> User:
    user = User.objects.with_email(email).first()
    if user is None:
        raise user_not_found()
    return user


def user_list(*, search: str = ""):
    return User.objects.search(search).order_by("created_at", "id")
