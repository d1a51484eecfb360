"""Backups end to end: `manage.py backup` and `manage.py restore` as operators run them.

A scratch PostgreSQL database is migrated and seeded, backed up with a throwaway GPG
key generated here, and restored into other scratch databases; every table's row count
and a checksum of its contents must come back identical. Then the failure modes: a
non-empty target, a modified file, a file for another key, a manifest that disagrees,
and retention by age. Every scratch database is dropped and every key deleted afterwards.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.ops.support import psql, server_url

REPO_ROOT = Path(__file__).resolve().parents[2]
DATE_FORMAT = "%Y-%m-%d-%H%M%S"
SECRET_MARKER = "secret-marker-visible-only-after-decryption"

SEED_SQL = f"""
INSERT INTO users (username, email, name)
    SELECT 'player' || g, 'player' || g || '@example.com', 'Player ' || g FROM generate_series(1, 250) g;
INSERT INTO sessions (token, expires_at, user_id, user_agent)
    SELECT md5(id::text), now() + interval '1 day', id, 'agent ' || username FROM users;
CREATE TABLE backup_probe (
    id bigint PRIMARY KEY, label text, payload jsonb, blob bytea, amount numeric(12, 2), seen timestamptz
);
INSERT INTO backup_probe
    SELECT g,
           CASE WHEN g % 7 = 0 THEN NULL ELSE 'row ' || g || E' \\u00e9\\u00df "quoted", \\'single\\'\\n line' END,
           jsonb_build_object('n', g, 'tags', jsonb_build_array('a', g % 3)),
           decode(md5(g::text), 'hex'),
           g * 1.25,
           timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute'
    FROM generate_series(1, 3000) g;
INSERT INTO backup_probe VALUES (0, '{SECRET_MARKER}', '{{}}', NULL, 0, NULL);
CREATE SCHEMA audit;
CREATE TABLE audit.events (id serial PRIMARY KEY, kind text NOT NULL);
INSERT INTO audit.events (kind) SELECT 'event-' || g FROM generate_series(1, 40) g;
"""


# --- helpers ------------------------------------------------------------------------------


def _gpg(home: Path, *args: str, input: bytes | None = None) -> bytes:
    result = subprocess.run(
        ["gpg", "--homedir", str(home), "--batch", "--no-tty", *args], input=input, capture_output=True, check=False
    )
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout


def _fingerprints(database: str) -> dict[str, tuple[int, str]]:
    """Every table in the user schemas: (row count, md5 of its rows in a fixed order)."""
    tables = psql(
        "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
        "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
        database,
    ).splitlines()
    query = " UNION ALL ".join(
        f"SELECT '{table}', count(*), coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '') FROM {table} t"
        for table in tables
    )
    rows = psql(query, database).splitlines()
    return {name: (int(count), digest) for name, count, digest in (row.split("|") for row in rows)}


class Scratch:
    """Scratch databases on the primary, all dropped at the end."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def create(self, label: str) -> str:
        name = f"questdb_bk_{label}_{uuid.uuid4().hex[:8]}"
        psql(f"CREATE DATABASE {name}")
        self.names.append(name)
        return name

    def drop_all(self) -> None:
        for name in self.names:
            psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="module")
def scratch():
    databases = Scratch()
    try:
        yield databases
    finally:
        databases.drop_all()


@pytest.fixture(scope="module")
def keys():
    """Two throwaway GPG keys: "backup" (the right one) and "other"."""
    home = Path(tempfile.mkdtemp(prefix="qdb-gpg-"))  # short: gpg-agent's socket path is limited
    try:
        found = {}
        for name in ("backup", "other"):
            uid = f"questdb {name} test <{name}@questdb.test>"
            _gpg(home, "--passphrase", "", "--quick-gen-key", uid, "future-default", "default", "never")
            found[name] = {
                "recipient": f"{name}@questdb.test",
                "public": _gpg(home, "--armor", "--export", uid).decode(),
                "private": _gpg(home, "--armor", "--export-secret-keys", uid).decode(),
            }
        yield found
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def empty_gnupghome():
    """GNUPGHOME for the commands: empty, so keys can only come from the environment."""
    home = tempfile.mkdtemp(prefix="qdb-gh-")
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def command_tmpdir(tmp_path_factory) -> Path:
    """TMPDIR of the commands, to check that they leave no work files or keyrings behind."""
    return tmp_path_factory.mktemp("tmpdir")


@pytest.fixture(scope="module")
def run(empty_gnupghome, command_tmpdir):
    def run(*args: str, database: str, **settings: str) -> subprocess.CompletedProcess:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("BACKUP_", "DB_READ_HOST", "DATABASE_REPLICA_URLS"))
        }
        env.update(
            DATABASE_URL=f"{server_url()}/{database}",
            QUESTDB_ENV="development",
            GNUPGHOME=empty_gnupghome,
            TMPDIR=str(command_tmpdir),
            PYTHONUNBUFFERED="1",
            **settings,
        )
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    return run


@pytest.fixture(scope="module")
def source(scratch):
    database = scratch.create("source")
    env = {key: value for key, value in os.environ.items() if key not in {"DB_READ_HOST", "DATABASE_REPLICA_URLS"}}
    env["DATABASE_URL"] = f"{server_url()}/{database}"
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "--verbosity", "0"],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        timeout=600,
    )
    psql(SEED_SQL, database)
    return database


def _backup_settings(directory: Path, key: dict, **extra) -> dict:
    return {
        "BACKUP_DIR": str(directory),
        "BACKUP_GPG_RECIPIENT": key["recipient"],
        "BACKUP_GPG_PUBLIC_KEY": key["public"],
        "BACKUP_PROGRESS_INTERVAL": "0.2",
        **extra,
    }


def _restore_settings(directory: Path, key: dict) -> dict:
    return {"BACKUP_DIR": str(directory), "BACKUP_GPG_PRIVATE_KEY": key["private"]}


@pytest.fixture(scope="module")
def first_backup(tmp_path_factory, source, keys, run):
    directory = tmp_path_factory.mktemp("backups")
    result = run("backup", database=source, **_backup_settings(directory, keys["backup"]))
    assert result.returncode == 0, result.stdout + result.stderr
    (backup,) = directory.glob("*.gpg")
    return {"directory": directory, "file": backup, "result": result}


def _copy_backup(first_backup, tmp_path, *, new_name: str | None = None) -> tuple[Path, Path]:
    """A copy of the first backup and its manifest in a directory of its own."""
    directory = tmp_path / "copy"
    directory.mkdir()
    original = first_backup["file"]
    name = new_name or original.name
    shutil.copy(original, directory / name)
    shutil.copy(f"{original}.metadata", directory / f"{name}.metadata")
    return directory / name, directory / f"{name}.metadata"


def _assert_refused(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("CommandError: ")
    for fragment in fragments:
        assert fragment in error, error


def _restore_file(run, backup: Path, *, target: str, source: str, key: dict) -> subprocess.CompletedProcess:
    """Restore one named backup file into `target`."""
    return run(
        "restore", backup.name, "--target-database", target, database=source, **_restore_settings(backup.parent, key)
    )


def _restore_latest(
    run, directory: Path, key: dict, *, source: str, target: str | None = None, **extra
) -> subprocess.CompletedProcess:
    """Restore the newest backup in `directory` into `target` (into `source` itself when None)."""
    into = ["--target-database", target] if target else []
    return run("restore", "--latest", *into, database=source, **{**_restore_settings(directory, key), **extra})


def _table_count(database: str) -> int:
    return int(
        psql("SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')", database)
    )


# --- backup -------------------------------------------------------------------------------


def test_backup_writes_an_encrypted_file_and_its_manifest(first_backup, source, keys):
    result = first_backup["result"]
    for step in range(1, 6):
        assert f"[default {step}/5]" in result.stdout
    backup = first_backup["file"]
    assert backup.name.startswith("questdb-default-")
    assert backup.name.endswith(".psql.bin.gz.gpg")
    assert sorted(path.name for path in first_backup["directory"].iterdir()) == [backup.name, f"{backup.name}.metadata"]
    assert (backup.stat().st_mode & 0o077) == 0, "backups must not be readable by other users"

    data = backup.read_bytes()
    assert not data.startswith(b"\x1f\x8b"), "the stored file is gzip, not encrypted"
    assert not data.startswith(b"PGDMP")
    assert SECRET_MARKER.encode() not in data
    manifest = json.loads(Path(f"{backup}.metadata").read_text())
    assert manifest["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["size"] == len(data)
    assert manifest["snapshot"] is True
    assert len(manifest["encryption"]["recipients"]) == 1

    counts = {f"{t['schema']}.{t['name']}": t["rows"] for t in manifest["tables"]}
    expected = {table: rows for table, (rows, _digest) in _fingerprints(source).items()}
    assert counts == expected
    assert counts["public.backup_probe"] == 3001
    assert counts["audit.events"] == 40

    everything = result.stdout + result.stderr
    assert "PRIVATE KEY" not in everything
    assert "BEGIN PGP" not in everything


def test_backup_refuses_to_write_an_unencrypted_backup(run, source, tmp_path):
    result = run("backup", database=source, BACKUP_DIR=str(tmp_path))
    _assert_refused(result, "BACKUP_GPG_RECIPIENT is not set")
    assert list(tmp_path.iterdir()) == []


# --- restore ------------------------------------------------------------------------------


def test_restore_reproduces_every_table_exactly(first_backup, source, scratch, keys, run):
    target = scratch.create("restored")
    result = _restore_latest(run, first_backup["directory"], keys["backup"], source=source, target=target)
    assert result.returncode == 0, result.stdout + result.stderr
    for step in range(1, 8):
        assert f"[{step}/7]" in result.stdout
    assert "every table's row count matches the backup" in result.stdout
    original, restored = _fingerprints(source), _fingerprints(target)
    assert len(original) >= 10
    assert restored == original
    assert "PRIVATE KEY" not in result.stdout + result.stderr


def test_restore_refuses_a_non_empty_target(first_backup, source, keys, run):
    tables = _table_count(source)
    result = _restore_latest(run, first_backup["directory"], keys["backup"], source=source)
    _assert_refused(result, "is not empty", source)
    assert _table_count(source) == tables


def test_restore_refuses_a_missing_target(first_backup, source, keys, run):
    result = _restore_latest(
        run, first_backup["directory"], keys["backup"], source=source, target="questdb_bk_does_not_exist"
    )
    _assert_refused(result, "does not exist")


def test_restore_refuses_a_modified_file(first_backup, source, scratch, keys, run, tmp_path):
    backup, _manifest = _copy_backup(first_backup, tmp_path)
    data = bytearray(backup.read_bytes())
    data[len(data) // 2] ^= 0x01
    backup.write_bytes(bytes(data))
    target = scratch.create("tampered")
    result = _restore_file(run, backup, target=target, source=source, key=keys["backup"])
    _assert_refused(result, "corrupt or was tampered with", backup.name)
    assert _table_count(target) == 0


def test_restore_refuses_a_modified_file_even_with_a_matching_manifest(
    first_backup, source, scratch, keys, run, tmp_path
):
    """Whoever can rewrite the manifest too is still stopped by GPG's integrity check."""
    backup, manifest_path = _copy_backup(first_backup, tmp_path)
    data = bytearray(backup.read_bytes())
    data[len(data) // 2] ^= 0x01
    backup.write_bytes(bytes(data))
    manifest = json.loads(manifest_path.read_text())
    manifest["sha256"] = hashlib.sha256(data).hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    target = scratch.create("forged")
    result = _restore_file(run, backup, target=target, source=source, key=keys["backup"])
    _assert_refused(result, "integrity check", "modified or is corrupt")
    assert _table_count(target) == 0


def test_restore_refuses_a_file_encrypted_to_another_key(source, scratch, keys, run, tmp_path):
    result = run("backup", database=source, **_backup_settings(tmp_path, keys["other"]))
    assert result.returncode == 0, result.stdout + result.stderr
    target = scratch.create("otherkey")
    result = _restore_latest(run, tmp_path, keys["backup"], source=source, target=target)
    _assert_refused(result, "encrypted to another key", "BACKUP_GPG_PRIVATE_KEY")
    assert _table_count(target) == 0


def test_restore_fails_loudly_when_row_counts_disagree_with_the_manifest(
    first_backup, source, scratch, keys, run, tmp_path
):
    backup, manifest_path = _copy_backup(first_backup, tmp_path)
    manifest = json.loads(manifest_path.read_text())
    for table in manifest["tables"]:
        if table["name"] == "backup_probe":
            table["rows"] += 1
    manifest_path.write_text(json.dumps(manifest))
    target = scratch.create("mismatch")
    result = _restore_file(run, backup, target=target, source=source, key=keys["backup"])
    _assert_refused(result, "FAILED verification", "public.backup_probe has 3001 rows, the backup had 3002")


def test_restore_without_the_manifest_is_refused(first_backup, source, scratch, keys, run, tmp_path):
    backup, manifest_path = _copy_backup(first_backup, tmp_path)
    manifest_path.unlink()
    target = scratch.create("nomanifest")
    result = _restore_file(run, backup, target=target, source=source, key=keys["backup"])
    _assert_refused(result, "No manifest")


def test_restore_with_a_passphrase_protected_key(source, scratch, run, tmp_path):
    home = Path(tempfile.mkdtemp(prefix="qdb-gpp-"))
    try:
        uid = "questdb protected <protected@questdb.test>"
        _gpg(home, "--passphrase", "correct horse", "--quick-gen-key", uid, "future-default", "default", "never")
        key = {
            "recipient": "protected@questdb.test",
            "public": _gpg(home, "--armor", "--export", uid).decode(),
            "private": _gpg(
                home,
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "correct horse",
                "--armor",
                "--export-secret-keys",
                uid,
            ).decode(),
        }
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
    assert run("backup", database=source, **_backup_settings(tmp_path, key)).returncode == 0
    target = scratch.create("passphrase")

    def restore(**extra) -> subprocess.CompletedProcess:
        return _restore_latest(run, tmp_path, key, source=source, target=target, **extra)

    _assert_refused(restore(), "protected by a passphrase", "BACKUP_GPG_PASSPHRASE is not set")
    _assert_refused(restore(BACKUP_GPG_PASSPHRASE="wrong"), "BACKUP_GPG_PASSPHRASE is wrong")
    result = restore(BACKUP_GPG_PASSPHRASE="correct horse")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "correct horse" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("not a key at all!", "neither an ASCII-armored OpenPGP key"),
        ("public", "holds no secret key"),
    ],
)
def test_restore_refuses_unusable_key_material(first_backup, source, scratch, keys, run, value, message):
    key = keys["backup"]["public"] if value == "public" else value
    target = scratch.create("badkey")
    result = run(
        "restore",
        "--latest",
        "--target-database",
        target,
        database=source,
        BACKUP_DIR=str(first_backup["directory"]),
        BACKUP_GPG_PRIVATE_KEY=key,
    )
    _assert_refused(result, "BACKUP_GPG_PRIVATE_KEY", message)
    assert "BEGIN PGP" not in result.stdout + result.stderr


# --- retention ----------------------------------------------------------------------------


def test_backup_prunes_backups_older_than_the_retention_window(first_backup, source, keys, run, tmp_path):
    now = datetime.now()
    old_name = f"questdb-default-{(now - timedelta(days=31)):{DATE_FORMAT}}.psql.bin.gz.gpg"
    recent_name = f"questdb-default-{(now - timedelta(days=29)):{DATE_FORMAT}}.psql.bin.gz.gpg"
    directory = tmp_path / "copy"
    _copy_backup(first_backup, tmp_path, new_name=old_name)
    shutil.copy(directory / old_name, directory / recent_name)
    shutil.copy(directory / f"{old_name}.metadata", directory / f"{recent_name}.metadata")
    # Not questdb's backups of this database: never touched.
    ancient = (now - timedelta(days=400)).strftime(DATE_FORMAT)
    (directory / f"questdb-analytics-{ancient}.psql.bin.gz.gpg").write_bytes(b"another alias")
    (directory / "README.txt").write_text("kept")

    result = run("backup", database=source, **_backup_settings(directory, keys["backup"], BACKUP_RETENTION_DAYS="30"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"deleted {old_name}" in result.stdout
    names = {path.name for path in directory.iterdir()}
    assert old_name not in names
    assert f"{old_name}.metadata" not in names
    assert {
        recent_name,
        f"{recent_name}.metadata",
        f"questdb-analytics-{ancient}.psql.bin.gz.gpg",
        "README.txt",
    } <= names
    fresh = [name for name in names if name.endswith(".gpg") and name not in {recent_name} and "analytics" not in name]
    assert len(fresh) == 1, "the new backup is there"


def test_retention_is_by_age_not_by_count(first_backup, source, keys, run, tmp_path):
    now = datetime.now()
    directory = tmp_path / "copy"
    names = [
        f"questdb-default-{(now - timedelta(hours=hours)):{DATE_FORMAT}}.psql.bin.gz.gpg" for hours in range(1, 16)
    ]
    _copy_backup(first_backup, tmp_path, new_name=names[0])
    for name in names[1:]:
        shutil.copy(directory / names[0], directory / name)
    result = run("backup", database=source, **_backup_settings(directory, keys["backup"], BACKUP_RETENTION_DAYS="1"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 file(s) to delete" in result.stdout
    assert all((directory / name).exists() for name in names)


def test_commands_leave_no_work_files_or_keyrings_behind(command_tmpdir):
    """Runs last in this module: every dump, work directory and throwaway GNUPGHOME is gone."""
    leftovers = [path.name for path in command_tmpdir.iterdir() if path.name.startswith("questdb-")]
    assert leftovers == []


# --- S3-compatible storage ------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_storage():
    """An S3-compatible endpoint on a spare port (moto's server: no S3 service runs on this machine)."""
    import boto3
    import requests

    from tests.db.helpers import wait_until
    from tests.e2e.conftest import free_port

    port = free_port()
    binary = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
    process = subprocess.Popen(
        [binary, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    endpoint = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return requests.get(endpoint, timeout=1).status_code < 500
        except requests.RequestException:
            return False

    try:
        assert wait_until(up, timeout=30)
        settings = {
            "BACKUP_STORAGE": "s3",
            "BACKUP_S3_BUCKET": "questdb-backups",
            "BACKUP_S3_ENDPOINT_URL": endpoint,
            "BACKUP_S3_ACCESS_KEY_ID": "questdb-test",
            "BACKUP_S3_SECRET_ACCESS_KEY": "questdb-test-secret",
            "BACKUP_S3_REGION": "us-east-1",
        }
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="questdb-test",
            aws_secret_access_key="questdb-test-secret",
            region_name="us-east-1",
        )
        client.create_bucket(Bucket="questdb-backups")
        yield settings, client
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_backup_and_restore_through_s3_compatible_storage(s3_storage, source, scratch, keys, run, tmp_path):
    settings, client = s3_storage
    backup = run("backup", database=source, **{**_backup_settings(tmp_path, keys["backup"]), **settings})
    assert backup.returncode == 0, backup.stdout + backup.stderr
    stored = [item["Key"] for item in client.list_objects_v2(Bucket="questdb-backups").get("Contents", [])]
    assert any(key.endswith(".gpg") for key in stored)
    assert any(key.endswith(".gpg.metadata") for key in stored)
    assert all(key.startswith("questdb-backups/") for key in stored)
    assert list(tmp_path.iterdir()) == []  # nothing went to the local directory

    target = scratch.create("from_s3")
    restore_settings = {**settings, "BACKUP_GPG_PRIVATE_KEY": keys["backup"]["private"]}
    restored = run("restore", "--latest", "--target-database", target, database=source, **restore_settings)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert _fingerprints(target) == _fingerprints(source)
