"""The benchmark's scenarios. bench/lua/bench.lua builds the same requests for wrk.

A scenario's keys come from the sample files (bench.dataset writes them): a warm run draws from
the first `hot_keys` lines of each file, after a warm-up pass has requested every one of them
once; a cold run first empties the cache and draws from every line, so most requests miss.
"""

import json
import random
from dataclasses import dataclass
from pathlib import Path

WARM = "warm"
BATCH_SIZE = 50  # ids per request of the batch scenario; bench.lua holds the same number
COLD = "cold"
# Writes and the mix have no cold variant: they are measured once, after the reads they touch were warmed.
ONCE = "-"


@dataclass(frozen=True)
class Scenario:
    name: str
    label: str
    group: str  # point | list | write | mix: how the targets group the ratios
    samples: tuple[str, ...]  # sample files the requests draw keys from
    states: tuple[str, ...]
    ok_status: int = 200
    lookups: int = 1  # lookups each request carries (a batch carries many)
    on_naive: bool = True  # the naive app has no batch endpoint: such scenarios run on questdb only
    warm_with: str = ""  # the scenario whose warm-up fills what this one reads (default: itself)
    rpc: str = ""  # the gRPC method the same scenario calls on `manage.py grpcserver` (bench.grpc_load); "" = none

    @property
    def warms_up(self) -> bool:
        return self.group in ("point", "list", "batch")


SCENARIOS = (
    Scenario("user_id", "user by id", "point", ("user_ids",), (COLD, WARM), rpc="GetUser"),
    Scenario("user_username", "user by username", "point", ("usernames",), (COLD, WARM)),
    Scenario("user_email", "user by email", "point", ("emails",), (COLD, WARM)),
    Scenario("character_id", "character by id", "point", ("character_ids",), (COLD, WARM), rpc="GetCharacter"),
    Scenario("character_list", "user's characters (10)", "list", ("list_user_ids",), (COLD, WARM)),
    Scenario(
        "session_lookup", "session lookup by token", "point", ("session_tokens",), (COLD, WARM), rpc="GetSessionByToken"
    ),
    Scenario(
        "character_batch",
        f"{BATCH_SIZE} characters by id, one batch",
        "batch",
        ("character_ids",),
        (COLD, WARM),
        lookups=BATCH_SIZE,
        on_naive=False,
        warm_with="character_id",
        rpc="GetCharacters",
    ),
    Scenario("session_refresh", "session refresh", "write", ("session_ids",), (ONCE,), rpc="RefreshSession"),
    Scenario("character_patch", "character PATCH money", "write", ("character_ids",), (ONCE,), rpc="UpdateCharacter"),
    Scenario("character_create", "character create", "write", ("create_user_ids",), (ONCE,), ok_status=201),
    Scenario(
        "mix",
        "mix 90% read / 10% write",
        "mix",
        ("user_ids", "usernames", "character_ids", "list_user_ids", "session_tokens", "session_ids", "create_user_ids"),
        (ONCE,),
    ),
)
BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}
# The mix's shares in percent; bench.lua holds the same table.
MIX = {
    "user_id": 20,
    "user_username": 15,
    "character_id": 20,
    "character_list": 15,
    "session_lookup": 20,
    "character_patch": 5,
    "session_refresh": 3,
    "character_create": 2,
}
# Created characters are named CREATED_PREFIX + run tag + ...; seeded ones start with "ch".
CREATED_PREFIX = "n"


def read_samples(directory: Path, name: str, limit: int = 0) -> list[str]:
    lines = [line for line in (directory / f"{name}.txt").read_text().splitlines() if line]
    return lines[:limit] if limit else lines


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes | None = None


def build_request(name: str, key: str, *, tag: str = "py", counter: int = 0) -> Request:
    """One request of scenario `name` for `key`, as bench.lua builds it (used for warm-up and pre-flight checks).

    A batch asks for `key` and BATCH_SIZE - 1 unknown ids, so a pre-flight sees both kinds of item."""
    if name == "user_id":
        return Request("GET", f"/api/v1/users/{key}/")
    if name == "user_username":
        return Request("GET", f"/api/v1/users/by-username/{key}/")
    if name == "user_email":
        return Request("GET", f"/api/v1/users/by-email/{key}/")
    if name == "character_id":
        return Request("GET", f"/api/v1/characters/{key}/")
    if name == "character_list":
        return Request("GET", f"/api/v1/characters/?user={key}")
    if name == "character_batch":
        ids = [key] + [f"00000000-0000-4000-8000-{n:012d}" for n in range(BATCH_SIZE - 1)]
        return Request("POST", "/api/v1/characters/batch/", json.dumps({"ids": ids}).encode())
    if name == "session_lookup":
        return Request("POST", "/api/v1/sessions/lookup/", json.dumps({"token": key}).encode())
    if name == "session_refresh":
        return Request("POST", f"/api/v1/sessions/{key}/refresh/", b"")
    if name == "character_patch":
        return Request("PATCH", f"/api/v1/characters/{key}/", json.dumps({"money": random.randint(0, 10**6)}).encode())
    if name == "character_create":
        suffix = "".join(random.choices("abcdefghijklmnopqrstuvwxyz", k=2))
        body = {"user": key, "name": f"{CREATED_PREFIX}{tag}{counter}{suffix}"[:16]}
        return Request("POST", "/api/v1/characters/", json.dumps(body).encode())
    raise ValueError(f"no single request shape for scenario {name!r}")


# The sample file each single-request scenario draws from (the mix draws from several).
SAMPLE_OF = {scenario.name: scenario.samples[0] for scenario in SCENARIOS if scenario.name != "mix"}
