"""docker-compose.yml: the developer topology is wired the way docs/operations.md says.

No Docker engine is needed: the file is parsed with PyYAML, the scripts it mounts are
checked, and the replica's script is run for real against the local PostgreSQL primary
(a throwaway standby on a spare port, stopped and removed afterwards).
"""

import glob
import itertools
import os
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from django.conf import settings

from tests.ops.support import require

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE = REPO_ROOT / "docker-compose.yml"
SERVICES = {"primary", "replica", "redis", "db-roles", "app", "proxy", "backup", "invalidator"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def _as_list(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value)
    return [str(item) for item in value]


def _environment(service: dict) -> dict:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def _settings(command: list[str]) -> dict:
    """`-c key=value` pairs of a postgres command line."""
    settings = {}
    for flag, value in itertools.pairwise(command):
        if flag == "-c":
            key, _, setting = value.partition("=")
            settings[key] = setting
    return settings


def _container_ports(service: dict) -> set[int]:
    return {int(str(port).rsplit(":", 1)[-1].split("/")[0]) for port in service.get("ports", [])}


def _bind_mounts(service: dict) -> dict[str, str]:
    """Host path -> container path for every ./ bind mount."""
    mounts = {}
    for volume in service.get("volumes", []):
        parts = volume.split(":") if isinstance(volume, str) else [volume["source"], volume["target"]]
        if parts[0].startswith("./"):
            mounts[parts[0]] = parts[1]
    return mounts


def test_every_service_is_declared(services):
    assert set(services) >= SERVICES, f"missing services: {SERVICES - set(services)}"


@pytest.mark.parametrize(
    ("service", "port"), [("primary", 5432), ("replica", 5432), ("redis", 6379), ("proxy", 8080), ("grpc", 50052)]
)
def test_ports_are_published_on_localhost(services, service, port):
    assert port in _container_ports(services[service])
    for mapping in services[service]["ports"]:
        assert str(mapping).startswith("127.0.0.1:"), f"{service} publishes {mapping} beyond localhost"


def test_the_app_is_reached_only_through_the_buffering_proxy(services):
    assert "ports" not in services["app"]
    proxy = _environment(services["proxy"])
    assert proxy["QUESTDB_UPSTREAM"] == "app:8000"
    template = REPO_ROOT / "docker" / "nginx" / "questdb.conf.template"
    assert any(volume.startswith("./docker/nginx/questdb.conf.template:") for volume in services["proxy"]["volumes"])
    assert "proxy_request_buffering on" in template.read_text()


def test_app_is_wired_to_primary_replica_and_redis(services):
    env = _environment(services["app"])
    database = urlsplit(env["DATABASE_URL"])
    assert database.scheme in {"postgres", "postgresql"}
    assert database.hostname == "primary"
    assert database.port == 5432
    assert database.path == "/questdb"
    assert env["DB_READ_HOST"].split(":")[0] == "replica"
    assert urlsplit(env["REDIS_URL"]).hostname == "redis"
    assert env["QUESTDB_ENV"] == "production"


def _role_url(env: dict, variable: str = "DATABASE_URL"):
    url = urlsplit(env[variable])
    assert url.hostname == "primary"
    assert url.path == "/questdb"
    return url


def test_each_process_logs_in_as_its_own_role_never_the_superuser(services):
    superuser = _environment(services["primary"])["POSTGRES_USER"]
    app, backup = _environment(services["app"]), _environment(services["backup"])
    assert _role_url(app).username == settings.DB_RUNTIME_ROLE
    assert _role_url(app, "DATABASE_OWNER_URL").username == settings.DB_OWNER_ROLE
    assert app["DB_READ_USER"] == settings.DB_READONLY_ROLE
    assert _role_url(backup).username == settings.DB_BACKUP_ROLE
    assert "DATABASE_OWNER_URL" not in backup
    for env in (app, backup):
        assert superuser not in {urlsplit(value).username for key, value in env.items() if key.endswith("_URL")}


def test_the_invalidation_consumer_runs_beside_the_app_as_the_runtime_role_on_the_same_redis(services):
    consumer, app = services["invalidator"], services["app"]
    assert _as_list(consumer["command"]) == ["invalidate-cache"]
    assert consumer["image"] == app["image"]
    env = _environment(consumer)
    assert _role_url(env).username == settings.DB_RUNTIME_ROLE
    assert env["REDIS_URL"] == _environment(app)["REDIS_URL"]
    assert env.get("CACHE_KEY_PREFIX") == _environment(app).get("CACHE_KEY_PREFIX")
    assert consumer["restart"] == "unless-stopped"
    assert consumer["depends_on"]["db-roles"]["condition"] == "service_completed_successfully"


def test_the_roles_job_runs_as_the_superuser_before_the_app_and_the_backup(services):
    job = services["db-roles"]
    assert _as_list(job["command"])[-2:] == ["manage.py", "db_roles"]
    assert job.get("restart", "no") == "no"
    env = _environment(job)
    assert _role_url(env).username == _environment(services["primary"])["POSTGRES_USER"]
    assert job["depends_on"]["primary"]["condition"] == "service_healthy"
    for name in ("app", "backup"):
        assert services[name]["depends_on"]["db-roles"]["condition"] == "service_completed_successfully"


def test_the_roles_job_sets_the_passwords_the_services_log_in_with(services):
    job = _environment(services["db-roles"])
    app, backup = _environment(services["app"]), _environment(services["backup"])
    assert job["DB_RUNTIME_PASSWORD"] == urlsplit(app["DATABASE_URL"]).password
    assert job["DB_OWNER_PASSWORD"] == urlsplit(app["DATABASE_OWNER_URL"]).password
    assert job["DB_READONLY_PASSWORD"] == app["DB_READ_PASSWORD"]
    assert job["DB_BACKUP_PASSWORD"] == urlsplit(backup["DATABASE_URL"]).password
    assert job["DB_IDENTITY_PASSWORD"]
    passwords = [job[f"DB_{kind}_PASSWORD"] for kind in ("OWNER", "RUNTIME", "IDENTITY", "READONLY", "BACKUP")]
    assert len(set(passwords)) == len(passwords)
    assert all(re.fullmatch(r"\$\{QUESTDB_\w+_PASSWORD:-[\w-]+-dev-only\}", value) for value in passwords)


def test_secret_key_comes_from_the_environment_with_a_clear_placeholder(services):
    value = _environment(services["app"])["SECRET_KEY"]
    match = re.fullmatch(r"\$\{SECRET_KEY:-(?P<placeholder>[^}]*)\}", value)
    assert match, f"SECRET_KEY is not taken from the environment: {value}"
    placeholder = match["placeholder"]
    assert "INSECURE" in placeholder
    # Production settings refuse shorter keys: the placeholder must let the stack start.
    assert len(placeholder) >= 50


def test_app_builds_the_dockerfile_and_waits_for_healthy_dependencies(services):
    app = services["app"]
    build = app["build"]
    assert (build if isinstance(build, str) else build["context"]) == "."
    assert (build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile") == "Dockerfile"
    for dependency in ("primary", "replica", "redis"):
        assert app["depends_on"][dependency]["condition"] == "service_healthy"
        assert services[dependency].get("healthcheck", {}).get("test"), f"{dependency} has no healthcheck"


def test_primary_archives_wal_with_pgbackrest(services):
    primary = services["primary"]
    command = _as_list(primary["command"])
    assert command[0] == "postgres"
    settings = _settings(command)
    assert settings["wal_level"] == "replica"
    assert settings["archive_mode"] == "on"
    assert settings["archive_timeout"] == "60"
    assert settings["autovacuum_naptime"] == "5s"  # the outbox's vacuum: the invalidator's role cannot
    archive = shlex.split(settings["archive_command"])
    assert archive[0] == "pgbackrest"
    assert "archive-push" in archive
    assert "%p" in archive
    build = primary["build"]
    dockerfile = REPO_ROOT / (build if isinstance(build, str) else build["context"]) / "Dockerfile"
    assert dockerfile.is_file()
    assert re.search(r"^FROM postgres:15\b", dockerfile.read_text(), re.MULTILINE)
    assert "pgbackrest" in dockerfile.read_text()


def test_primary_init_script_creates_the_replication_role(services):
    primary = services["primary"]
    mounts = _bind_mounts(primary)
    init = [host for host, target in mounts.items() if target.startswith("/docker-entrypoint-initdb.d/")]
    assert init, "no init script mounted into /docker-entrypoint-initdb.d"
    text = (REPO_ROOT / init[0]).read_text()
    assert "REPLICATION" in text
    assert re.search(r"host\s+replication", text)
    assert "stanza-create" in text
    env = _environment(primary)
    assert env["REPLICATION_USER"] == _environment(services["replica"])["REPLICATION_USER"]


def _replica_script(services) -> Path:
    replica = services["replica"]
    command = _as_list(replica["command"])
    mounts = {target: host for host, target in _bind_mounts(replica).items()}
    assert command[0] in mounts, f"replica command {command[0]} is not a mounted script"
    return REPO_ROOT / mounts[command[0]]


def _commands(script: Path) -> list[list[str]]:
    """The script's command lines, continuation lines joined, comments and log lines left out."""
    text = script.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [shlex.split(line) for line in lines if line and not line.startswith(("#", "log ", "die "))]


def test_replica_command_clones_the_primary_with_pg_basebackup_R(services):
    script = _replica_script(services)
    clones = [tokens for tokens in _commands(script) if any(token.endswith("pg_basebackup)") for token in tokens)]
    assert clones, "the replica script does not run pg_basebackup"
    for tokens in clones:
        assert "-R" in tokens or "--write-recovery-conf" in tokens, tokens
        assert "--wal-method=stream" in tokens
        assert any(token.startswith("--host=$PRIMARY_HOST") for token in tokens)
    starts = [tokens for tokens in _commands(script) if tokens[:2] == ["exec", "$(pgbin postgres)"]]
    assert starts, "the replica script does not exec postgres"
    assert "hot_standby=on" in script.read_text()
    env = _environment(services["replica"])
    assert env["PRIMARY_HOST"] == "primary"
    assert services["replica"]["depends_on"]["primary"]["condition"] == "service_healthy"


def test_backup_is_a_one_shot_job_in_its_own_profile(services):
    backup = services["backup"]
    assert backup["profiles"] == ["backup"]
    command = _as_list(backup["command"])
    assert command[-2:] == ["manage.py", "backup"]
    assert backup.get("restart", "no") == "no"
    assert urlsplit(_environment(backup)["DATABASE_URL"]).hostname == "primary"


def test_referenced_scripts_exist_and_are_executable(services):
    referenced = []
    for name, service in services.items():
        for host in _bind_mounts(service):
            path = REPO_ROOT / host
            assert path.exists(), f"{name} mounts {host}, which does not exist"
            if path.suffix == ".sh":
                referenced.append(path)
    referenced.append(REPO_ROOT / "docker" / "entrypoint.sh")
    assert len(referenced) >= 3
    for path in referenced:
        assert os.access(path, os.X_OK), f"{path} is not executable"
        assert path.read_text().startswith("#!/usr/bin/env bash\n")
        subprocess.run(["bash", "-n", str(path)], check=True)


# --- The replica script, for real, against the local primary -------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _bindir() -> str | None:
    if os.environ.get("PG_BINDIR"):
        return os.environ["PG_BINDIR"]
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_basebackup"))
    return os.path.dirname(candidates[-1]) if candidates else None


def _primary() -> tuple[str, int]:
    url = urlsplit(os.environ.get("DATABASE_URL", ""))
    return url.hostname or "127.0.0.1", url.port or 5432


def _psql(port: int, query: str, *, host: str | None = None, database: str = "postgres") -> str:
    command = ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-p", str(port), "-d", database, "-c", query]
    if host:  # the primary, over TCP as postgres
        command += ["-h", host, "-U", "postgres"]
    else:  # the standby, over its socket as the postgres OS user (peer)
        command = ["runuser", "-u", "postgres", "--", *command, "-h", "/var/run/postgresql"]
    return subprocess.run(command, check=True, capture_output=True, text=True, timeout=30).stdout.strip()


def _wait(condition, timeout: float, what: str, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except subprocess.SubprocessError:
            pass
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}; replica log:\n{log.read_text()[-3000:]}")


@pytest.mark.slow
def test_replica_script_streams_from_the_local_primary():
    bindir = _bindir()
    require(os.geteuid() == 0 and bindir is not None and bool(shutil.which("runuser")), "needs root and PostgreSQL")
    host, primary_port = _primary()
    limits = {
        name: _psql(primary_port, f"SHOW {name}", host=host)
        for name in ("max_connections", "max_worker_processes", "max_wal_senders", "max_locks_per_transaction")
    }
    workdir = Path(tempfile.mkdtemp(prefix="questdb-replica-test-"))
    pgdata = workdir / "pgdata"
    port = _free_port()
    env = {
        **os.environ,
        "PGDATA": str(pgdata),
        "PRIMARY_HOST": host,
        "PRIMARY_PORT": str(primary_port),
        "REPLICATION_USER": "postgres",
        "REPLICA_PORT": str(port),
        "REPLICA_LISTEN_ADDRESSES": "127.0.0.1",
        "PG_BINDIR": bindir,
        "PRIMARY_WAIT_TIMEOUT": "20",
    }
    extra = [arg for name, value in limits.items() for arg in ("-c", f"{name}={value}")]
    script = REPO_ROOT / "docker" / "postgres" / "replica.sh"
    scratch = f"questdb_replica_{uuid.uuid4().hex[:10]}"
    process = None

    def start(log: Path) -> subprocess.Popen:
        with log.open("w") as handle:
            return subprocess.Popen([str(script), *extra], env=env, stdout=handle, stderr=subprocess.STDOUT)

    def stop(process: subprocess.Popen) -> None:
        """A fast shutdown through pg_ctl (runuser, between us and postgres, does not pass SIGINT on)."""
        if process.poll() is None and (pgdata / "postmaster.pid").exists():
            subprocess.run(
                ["runuser", "-u", "postgres", "--", f"{bindir}/pg_ctl", "-D", str(pgdata), "stop", "-m", "fast", "-w"],
                check=False,
                capture_output=True,
                timeout=90,
            )
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def streaming() -> bool:
        return _psql(port, "SELECT pg_is_in_recovery()::text || status FROM pg_stat_wal_receiver") == "truestreaming"

    try:
        first_log = workdir / "first.log"
        process = start(first_log)
        _wait(streaming, 90, "the standby to stream", first_log)
        assert "pg_basebackup -R" in first_log.read_text()
        conninfo = (pgdata / "postgresql.auto.conf").read_text()
        assert "primary_conninfo" in conninfo
        assert (pgdata / "standby.signal").exists()
        assert not (workdir / "pgdata.partial").exists()

        # A write on the primary shows up on the standby.
        _psql(primary_port, f"CREATE DATABASE {scratch}", host=host)
        _psql(primary_port, "CREATE TABLE probe AS SELECT 42 AS answer", host=host, database=scratch)
        _wait(
            lambda: _psql(port, "SELECT answer FROM probe", database=scratch) == "42",
            30,
            "the standby to replay the write",
            first_log,
        )

        # A restart reuses the cluster instead of cloning again.
        stop(process)
        assert process.returncode == 0
        second_log = workdir / "second.log"
        process = start(second_log)
        _wait(streaming, 60, "the restarted standby to stream", second_log)
        text = second_log.read_text()
        assert "existing cluster" in text
        assert "pg_basebackup" not in text
    finally:
        if process is not None:
            stop(process)
        subprocess.run(
            [
                "psql",
                "-X",
                "-q",
                "-h",
                host,
                "-p",
                str(primary_port),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-c",
                f"DROP DATABASE IF EXISTS {scratch} WITH (FORCE)",
            ],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(workdir, ignore_errors=True)
