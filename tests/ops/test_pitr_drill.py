"""Point-in-time-recovery drill (scripts/pitr_drill.sh) for questdb.

The drill builds its own throwaway PostgreSQL cluster and pgBackRest repo in a
temp dir; it never touches the shared server. Needs root (or the postgres OS
user) and the PostgreSQL server binaries, as on CI.
"""

import glob
import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from tests.ops.support import require

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
DRILL = REPO_ROOT / "scripts" / "pitr_drill.sh"
RESULT_RE = re.compile(r"^PITR_RESULT (.*)$", re.MULTILINE)
WORKSPACE_RE = re.compile(r"workspace (/\S+),")


@pytest.fixture(scope="module", autouse=True)
def _prerequisites():
    require(
        os.geteuid() == 0 or os.environ.get("USER") == "postgres",
        "the PITR drill needs root or the postgres OS user",
    )
    require(
        bool(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or os.environ.get("PG_BINDIR"),
        "PostgreSQL server binaries are not installed",
    )
    require(
        shutil.which("pgbackrest") is not None or os.geteuid() == 0,
        "pgbackrest is not installed",
    )


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_drill(**env_overrides):
    env = dict(os.environ)
    env["DRILL_PORT"] = str(_free_port())
    env.update({k: str(v) for k, v in env_overrides.items()})
    return subprocess.run(
        ["bash", str(DRILL)],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )


def parse_result(output, errors=""):
    matches = RESULT_RE.findall(output)
    assert len(matches) == 1, f"expected one PITR_RESULT line in:\n{output}\nstderr:\n{errors}"
    fields = dict(item.split("=", 1) for item in matches[0].split())
    for key in ("restore_seconds", "data_loss_seconds", "db_size_mb", "rows", "ok"):
        assert key in fields, f"{key} missing from PITR_RESULT: {matches[0]}"
    return fields


def assert_positive_float(value, name):
    number = float(value)
    assert number > 0, f"{name}={value} is not a positive number"
    return number


def assert_workspace_removed(stdout):
    match = WORKSPACE_RE.search(stdout)
    assert match, f"drill did not report its workspace:\n{stdout}"
    assert not os.path.exists(match.group(1)), f"{match.group(1)} was not cleaned up"


def test_drill_restores_exactly_to_target_time():
    secret = "questdb-drill-test-passphrase-7f3a"
    proc = run_drill(PGBACKREST_REPO_CIPHER_PASS=secret)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    result = parse_result(proc.stdout, proc.stderr)

    assert result["ok"] == "1", output
    assert result["batch_b_rows"] == "0"
    assert int(result["batch_a_rows"]) > 0
    assert int(result["rows"]) == 100000 + int(result["batch_a_rows"])
    assert int(result["db_size_mb"]) > 0
    assert_positive_float(result["restore_seconds"], "restore_seconds")
    data_loss = float(result["data_loss_seconds"])
    assert 0 <= data_loss < 300, result
    assert int(result["archive_timeout_seconds"]) < 300
    assert secret not in output, "the repo passphrase leaked into the output"
    assert_workspace_removed(proc.stdout)


def test_drill_fails_when_restored_rows_do_not_match_target():
    # Self-test: a target after batch B restores B's rows, which the drill
    # must report as a mismatch instead of passing.
    proc = run_drill(DRILL_TARGET_POINT="after-b", DRILL_ROWS=1000)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    result = parse_result(proc.stdout, proc.stderr)

    assert result["ok"] == "0"
    assert int(result["batch_b_rows"]) > 0
    assert "MISMATCH: batch B rows" in proc.stderr
    assert_positive_float(result["restore_seconds"], "restore_seconds")
    assert_workspace_removed(proc.stdout)
