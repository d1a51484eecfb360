import pytest
from django.core.management import call_command

from questdb.models import ServiceAPIKey

pytestmark = pytest.mark.django_db

READS = [("get", "/api/v1/users/"), ("get", "/api/v1/characters/"), ("post", "/api/v1/sessions/lookup/")]
WRITES = [("post", "/api/v1/characters/"), ("post", "/api/v1/sessions/00000000-0000-0000-0000-000000000000/refresh/")]


def _call(client, method, path, header=None):
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    return getattr(client, method)(path, data={}, content_type="application/json", **extra)


@pytest.mark.parametrize(("method", "path"), READS + WRITES)
@pytest.mark.parametrize("header", [None, "Api-Key nope.nope", "Bearer abc", "Api-Key", "Api-Key " + "x" * 500])
def test_missing_or_invalid_keys_get_401_with_a_code(client, method, path, header):
    response = _call(client, method, path, header)
    assert response.status_code == 401
    assert response.json()["code"] in {"not_authenticated", "invalid_api_key"}
    assert response["WWW-Authenticate"] == "Api-Key"


@pytest.mark.parametrize(("method", "path"), WRITES)
def test_a_read_key_cannot_write(client, read_key, method, path):
    response = _call(client, method, path, f"Api-Key {read_key}")
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"


@pytest.mark.parametrize(("method", "path"), READS)
def test_a_read_key_can_read_including_the_token_lookup(client, read_key, method, path):
    assert _call(client, method, path, f"Api-Key {read_key}").status_code in {200, 400}


@pytest.mark.parametrize(("method", "path"), WRITES)
def test_a_write_key_passes_authorization(client, write_key, method, path):
    assert _call(client, method, path, f"Api-Key {write_key}").status_code not in {401, 403}


def test_a_revoked_key_stops_working(client, write_key, settings):
    settings.API_KEY_CACHE_SECONDS = 0
    ServiceAPIKey.objects.update(revoked=True)
    assert _call(client, "get", "/api/v1/users/", f"Api-Key {write_key}").status_code == 401


def test_create_api_key_prints_a_working_key_alone_on_the_last_line(client, capsys):
    call_command("create_api_key", "auth-server", scope="read")
    key = capsys.readouterr().out.strip().splitlines()[-1]
    assert " " not in key
    stored = ServiceAPIKey.objects.get(name="auth-server")
    assert stored.scope == "read"
    assert key not in stored.hashed_key
    assert _call(client, "get", "/api/v1/users/", f"Api-Key {key}").status_code == 200


def test_a_cached_key_verdict_costs_no_query(client, write_key, django_assert_num_queries):
    header = f"Api-Key {write_key}"
    _call(client, "get", "/api/v1/characters/?user=00000000-0000-0000-0000-000000000000", header)
    with django_assert_num_queries(1):  # the character list, nothing for the key
        _call(client, "get", "/api/v1/characters/?user=00000000-0000-0000-0000-000000000000", header)


def test_throttling_is_per_key(client, write_key, read_key, settings):
    from django.core.cache import cache

    cache.clear()
    settings.API_THROTTLE_RATE = "2/min"
    statuses = [_call(client, "get", "/api/v1/users/", f"Api-Key {write_key}").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    throttled = _call(client, "get", "/api/v1/users/", f"Api-Key {write_key}")
    assert throttled.json()["code"] == "throttled"
    assert int(throttled["Retry-After"]) > 0
    assert _call(client, "get", "/api/v1/users/", f"Api-Key {read_key}").status_code == 200
    cache.clear()
