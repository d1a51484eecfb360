"""The server process itself: health, reflection, throttling, a busy pool, deadlines, replicas, SIGTERM, workers."""

import os
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from google.protobuf import field_mask_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from characters.models import Character
from questdb.db import replicas
from questdb.v1 import characters_pb2 as cpb
from questdb.v1 import users_pb2 as upb
from questdb.v1 import users_pb2_grpc
from tests.db.helpers import connect, wait_for_replay, wait_until
from tests.grpc.conftest import grpc_server, log_text, worker_pids
from tests.grpc.helpers import error_code, failure

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")
SERVICES = ("questdb.v1.UserService", "questdb.v1.CharacterDbService", "questdb.v1.SessionService")


def test_health_serves_every_service_and_reflection_lists_them(grpc_app):
    for name in ("", *SERVICES):
        assert grpc_app.health_status(name) == health_pb2.HealthCheckResponse.SERVING
    stub = reflection_pb2_grpc.ServerReflectionStub(grpc_app.channel)
    answers = list(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
    listed = {service.name for service in answers[0].list_services_response.service}
    assert {*SERVICES, "grpc.health.v1.Health"} <= listed
    files = list(
        stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(file_containing_symbol="questdb.v1.CharacterDbService")])
        )
    )
    assert files[0].file_descriptor_response.file_descriptor_proto  # a client can be built from the server alone


def test_health_is_not_serving_while_the_database_is_unreachable():
    from tests.e2e.conftest import free_port

    dead = f"postgres://postgres@127.0.0.1:{free_port()}/questdb"
    with grpc_server(wait_serving=False, DATABASE_URL=dead, DB_READ_HOST="", DB_CONNECTION_TIMEOUT="300") as server:
        time.sleep(1.0)  # several readiness checks have run and failed
        assert server.health_status() == health_pb2.HealthCheckResponse.NOT_SERVING
        assert server.health_status("questdb.v1.UserService") == health_pb2.HealthCheckResponse.NOT_SERVING


def test_a_key_past_its_rate_is_resource_exhausted(make_user, read_key):
    user = make_user()
    metadata = (("authorization", f"Api-Key {read_key}"),)
    with grpc_server(API_THROTTLE_RATE="3/min") as server:
        request = upb.GetUserRequest(id=str(user.id))
        for _ in range(3):
            server.users.GetUser(request, metadata=metadata)
        error = failure(server.users.GetUser, request, metadata=metadata)
    assert (error.code(), error_code(error)) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "throttled")
    assert 1 <= int(dict(error.trailing_metadata())["retry-after"]) <= 60


def _money_update(character, money=1) -> cpb.UpdateCharacterRequest:
    return cpb.UpdateCharacterRequest(
        character=cpb.Character(id=str(character.id), money=money),
        update_mask=field_mask_pb2.FieldMask(paths=["money"]),
    )


def test_a_passed_deadline_cancels_the_query_the_call_was_waiting_for(make_user, write_key):
    character = Character.objects.create(user=make_user(), name="Deadline")
    metadata = (("authorization", f"Api-Key {write_key}"),)
    app_name = "questdb-grpc-deadline"
    waiting = (
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND wait_event_type = 'Lock'",
        [app_name],
    )
    with grpc_server(REDIS_URL="", DB_READ_HOST="", DB_APPLICATION_NAME=app_name) as server, connect() as blocker:
        blocker.execute("BEGIN")
        blocker.execute("LOCK TABLE characters IN ACCESS EXCLUSIVE MODE")
        try:
            started = time.monotonic()
            error = failure(server.characters.UpdateCharacter, _money_update(character), metadata=metadata, timeout=0.5)
            assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert time.monotonic() - started < 2
            assert wait_until(lambda: blocker.execute(*waiting).fetchone()[0] == 0, timeout=3)
        finally:
            blocker.execute("ROLLBACK")
        # The server is fine afterwards, and the abandoned update did not happen.
        assert server.characters.GetCharacter(cpb.GetCharacterRequest(id=str(character.id)), metadata=metadata)
    assert Character.objects.using("default").get(id=character.id).money == 0


def test_an_exhausted_pool_is_unavailable_with_a_retry_hint(make_user, write_key):
    user = make_user()
    characters = [Character.objects.create(user=user, name=f"Busy{n}") for n in range(4)]
    metadata = (("authorization", f"Api-Key {write_key}"),)
    env = {"DB_READ_HOST": "", "REDIS_URL": "", "DB_MAX_CONNECTIONS": "1", "DB_MIN_CONNECTIONS": "1"}
    with grpc_server(DB_CONNECTION_TIMEOUT="500", GRPC_MAX_WORKERS="4", **env) as server, connect() as blocker:
        blocker.execute("BEGIN")
        blocker.execute("LOCK TABLE characters IN ACCESS EXCLUSIVE MODE")  # each update holds its connection

        def update(character):
            try:
                server.characters.UpdateCharacter(_money_update(character), metadata=metadata, timeout=10)
                return None
            except grpc.RpcError as error:
                return error

        try:
            with ThreadPoolExecutor(max_workers=4) as pool:
                futures = [pool.submit(update, c) for c in characters]
                assert wait_until(lambda: sum(f.done() for f in futures) >= 3, timeout=5)
                blocker.execute("ROLLBACK")
                results = [f.result() for f in futures]
        finally:
            if blocker.info.transaction_status:
                blocker.execute("ROLLBACK")
    busy = [r for r in results if r is not None]
    assert len(busy) == 3  # one update held the only connection; the others waited 500 ms for it
    assert {(r.code(), error_code(r)) for r in busy} == {(grpc.StatusCode.UNAVAILABLE, "database_busy")}
    assert dict(busy[0].trailing_metadata())["retry-after"] == "1"


def test_a_consistency_token_keeps_reads_off_a_replica_that_has_not_replayed_the_write(make_user, write_key):
    user = make_user()
    character = Character.objects.create(user=user, name="Replayed")
    wait_for_replay()
    metadata = (("authorization", f"Api-Key {write_key}"),)
    # No lookup cache: these reads go to the databases, where routing decides.
    with grpc_server(REDIS_URL="", DB_REPLICA_MAX_LAG="60") as server:
        get = cpb.GetCharacterRequest(id=str(character.id))
        assert server.characters.GetCharacter(get, metadata=metadata).character.money == 0
        with connect("replica_1") as standby:
            standby.execute("SELECT pg_wal_replay_pause()")
        try:
            request = cpb.UpdateCharacterRequest(
                character=cpb.Character(id=str(character.id), money=77),
                update_mask=field_mask_pb2.FieldMask(paths=["money"]),
            )
            _, call = server.characters.UpdateCharacter.with_call(request, metadata=metadata)
            token = dict(call.initial_metadata())["x-consistency-token"]
            stale = server.characters.GetCharacter(get, metadata=metadata).character.money
            fresh = server.characters.GetCharacter(get, metadata=(*metadata, ("x-consistency-token", token)))
        finally:
            with connect("replica_1") as standby:
                standby.execute("SELECT pg_wal_replay_resume()")
            wait_for_replay()
    assert stale == 0  # without the token, the paused standby answered
    assert fresh.character.money == 77
    replicas.monitor.check_now()


def test_sigterm_lets_an_in_flight_call_finish_then_exits(make_user, write_key):
    user = make_user()
    character = Character.objects.create(user=user, name="Graceful")
    metadata = (("authorization", f"Api-Key {write_key}"),)
    with grpc_server(REDIS_URL="", DB_READ_HOST="", GRPC_PROCESSES="3") as server, connect() as blocker:
        assert wait_until(lambda: len(worker_pids(server)) == 3, timeout=10)
        workers = worker_pids(server)
        blocker.execute("BEGIN")
        blocker.execute("LOCK TABLE characters IN ACCESS EXCLUSIVE MODE")
        result = {}

        def call():
            request = cpb.DeleteCharacterRequest(id=str(character.id))
            result["response"] = server.characters.DeleteCharacter(request, metadata=metadata, timeout=10)

        caller = threading.Thread(target=call)
        caller.start()
        time.sleep(0.5)  # the call is waiting for the lock inside one worker
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        blocker.execute("ROLLBACK")
        caller.join(10)
        assert server.process.wait(10) == 0
        text = log_text(server)
    assert result["response"].character.HasField("deleted_at")
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)  # every worker has exited
    assert text.count("stopping: in-flight RPCs get 5s") == 3
    assert "questdb gRPC stopped" in text


def _serving_on_fresh_connections(server, count: int) -> bool:
    """Health and reflection on `count` new connections, which the kernel spreads over the workers."""
    for _ in range(count):
        with grpc.insecure_channel(server.address, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            if health.status != health_pb2.HealthCheckResponse.SERVING:
                return False
            request = reflection_pb2.ServerReflectionRequest(list_services="")
            answer = next(reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(iter([request])))
            if "questdb.v1.UserService" not in {s.name for s in answer.list_services_response.service}:
                return False
    return True


def test_a_worker_that_dies_is_replaced(make_user, read_key):
    user = make_user()
    metadata = (("authorization", f"Api-Key {read_key}"),)
    with grpc_server(GRPC_PROCESSES="2") as server:
        assert wait_until(lambda: len(worker_pids(server)) == 2, timeout=10)
        first, survivor = sorted(worker_pids(server))
        os.kill(first, signal.SIGKILL)
        assert wait_until(lambda: len(worker_pids(server) - {first, survivor}) == 1, timeout=15)
        assert wait_until(lambda: _serving_on_fresh_connections(server, 8), timeout=15)
        with grpc.insecure_channel(server.address, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
            stub = users_pb2_grpc.UserServiceStub(channel)
            answer = stub.GetUser(upb.GetUserRequest(id=str(user.id)), metadata=metadata, timeout=5)
        assert answer.user.id == str(user.id)
        assert server.process.poll() is None
        assert f"gRPC worker {first} exited (-9)" in log_text(server)


def test_a_port_in_use_fails_the_start_instead_of_being_shared():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(RuntimeError, match=r"cannot listen on 127\.0\.0\.1"), grpc_server(GRPC_PORT=str(port)):
            pass


def test_workers_stop_when_the_supervisor_is_killed():
    with grpc_server(GRPC_PROCESSES="2") as server:
        assert wait_until(lambda: len(worker_pids(server)) == 2, timeout=10)
        workers = worker_pids(server)
        server.process.kill()
        server.process.wait(5)
        # Orphans would keep the port; they notice their parent is gone and shut down.
        assert wait_until(lambda: not any(_running(pid) for pid in workers), timeout=15)


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
