"""`manage.py restore [--latest | NAME] [--database ALIAS] [--target-database NAME]`.

Restores a backup written by `manage.py backup` into an EMPTY database, and proves it:

1. the target database must exist and hold no table, view or sequence (never overwritten);
2. the stored file's SHA-256 must match its manifest (a modified file is refused);
3. GPG must decrypt it with its integrity check (a file for another key is refused);
4. pg_restore runs in one transaction (all or nothing);
5. every table's row count must equal the count recorded at backup time.

Any failure exits 1 with one line that names the problem. It connects with DATABASE_OWNER_URL
(default: DATABASE_URL): the owner role creates and owns what it restores.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
import zlib
from shutil import copyfileobj
from typing import IO

import psycopg
from dbbackup import settings as dbbackup_settings
from dbbackup import utils as dbbackup_utils
from dbbackup.db.base import get_connector
from dbbackup.db.exceptions import CommandConnectorError
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections

from questdb.cache.invalidation import request_reset
from questdb.db.aliases import connect_as
from questdb.db.direct import (
    describe,
    first_line,
    is_postgresql,
    is_sqlite,
    pg_connect,
    pg_relation_count,
    pg_row_counts,
    sqlite_row_counts,
)
from questdb.ops.backups import (
    CHUNK,
    GPG,
    Progress,
    check_primary_alias,
    get_storage,
    list_backups,
    read_manifest,
)

STEPS = 7


class Command(BaseCommand):
    help = "Restore a questdb backup into an empty database and verify every table's row count."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", nargs="?", help="Backup file name in the backup storage (see --list).")
        parser.add_argument("--latest", action="store_true", help="Restore the newest backup of the database.")
        parser.add_argument(
            "--list", action="store_true", dest="list_only", help="List the database's backups and exit."
        )
        parser.add_argument(
            "--database",
            default=DEFAULT_DB_ALIAS,
            help="Alias whose server (and, unless --target-database, database) receives the restore.",
        )
        parser.add_argument(
            "--target-database",
            help="Restore into this (empty) database on the alias's server instead of the alias's own database.",
        )

    def handle(self, *args, name, latest, list_only, database, target_database, **options) -> None:
        alias = database
        check_primary_alias(
            alias, replica_error=f"{alias!r} is a read replica (read-only); restore into a primary alias."
        )
        if alias == DEFAULT_DB_ALIAS:
            # Restoring creates tables: the owner role does it, and owns what it restores.
            connect_as(alias, settings.DATABASE_OWNER_URL)
        source = connections[alias].settings_dict
        storage = get_storage()
        if list_only:
            self._list(storage, alias)
            return
        name = self._chosen_backup(storage, alias, name, latest)
        target = target_database or source["NAME"]
        progress = Progress(self, STEPS)

        progress.step(f"Checking that {describe(source, target)} exists and is empty")
        self._check_empty(source, target)

        progress.step(f"Fetching {name} and its manifest")
        manifest = read_manifest(storage, name)
        same_engine = manifest["engine"] == source["ENGINE"]
        if not same_engine and not (is_postgresql(source) and "postgresql" in manifest["engine"]):
            raise CommandError(f"{name} is a {manifest['engine']} backup; {alias!r} uses {source['ENGINE']}.")
        workdir = tempfile.mkdtemp(prefix="questdb-restore-", dir=dbbackup_settings.TMP_DIR)
        try:
            encrypted = self._download(storage, name, manifest, workdir, progress)
            compressed = self._decrypt(encrypted, name, progress)
            dump = self._decompress(compressed, name, progress)

            progress.step(f"Restoring into {describe(source, target)}")
            with progress.ticking("restoring"):
                self._restore(alias, source, target, dump)
            dump.close()
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

        progress.step("Comparing every table's row count with the manifest")
        self._verify(source, target, manifest, name)
        self._reset_cache()

    def _reset_cache(self) -> None:
        """Cached values may come from rows the restore replaced: the invalidation consumer drops them all."""
        if not settings.REDIS_URL:
            return
        try:
            request_reset()
        except Exception as error:  # the restore itself succeeded; say what is left to do
            self.stderr.write(
                f"Could not ask for a cache reset ({error.__class__.__name__}); once the app uses the restored "
                "database, run `manage.py invalidate_cache --reset`."
            )
            return
        self.stdout.write(
            "Asked the cache invalidation consumer to drop every cached value (run `manage.py invalidate_cache "
            "--reset` again once the app is pointed at the restored database, if it is not yet)."
        )

    def _chosen_backup(self, storage, alias: str, name: str | None, latest: bool) -> str:
        if bool(name) == bool(latest):
            raise CommandError("Name one backup to restore, or pass --latest (not both).")
        if name:
            return name
        backups = list_backups(storage, alias)
        if not backups:
            raise CommandError(f"No backup of {alias!r} in the backup storage.")
        return backups[-1]

    def _download(self, storage, name: str, manifest: dict, workdir: str, progress: Progress) -> str:
        """Fetch the backup into `workdir` and check it against the manifest's SHA-256; returns its path."""
        encrypted = os.path.join(workdir, "backup.gpg")
        if not storage.storage.exists(name):
            raise CommandError(f"No backup named {name} in the backup storage (see restore --list).")
        with (
            progress.ticking("downloading", size=lambda: os.path.getsize(encrypted)),
            storage.read_file(name) as remote,
            open(encrypted, "wb") as local,
        ):
            copyfileobj(remote, local, CHUNK)
        size = dbbackup_utils.bytes_to_str(os.path.getsize(encrypted))
        progress.detail(f"{size}, made {manifest.get('created_at', '?')}")

        progress.step("Verifying the SHA-256 recorded in the manifest")
        with open(encrypted, "rb") as handle:
            checksum = hashlib.file_digest(handle, "sha256").hexdigest()
        if checksum != manifest["sha256"]:
            raise CommandError(
                f"{name} is corrupt or was tampered with: its SHA-256 is {checksum}, the manifest recorded "
                f"{manifest['sha256']}. Refusing to restore it."
            )
        return encrypted

    def _decrypt(self, encrypted: str, name: str, progress: Progress) -> str:
        """Decrypt the downloaded file beside it, then delete it; returns the decrypted file's path."""
        progress.step("Decrypting with GPG")
        compressed = os.path.join(os.path.dirname(encrypted), "backup.gz")
        with (
            GPG(key_setting="BACKUP_GPG_PRIVATE_KEY", passphrase=settings.BACKUP_GPG_PASSPHRASE) as gpg,
            progress.ticking("decrypting"),
        ):
            gpg.decrypt(encrypted, compressed, name)
        os.remove(encrypted)
        return compressed

    def _decompress(self, compressed: str, name: str, progress: Progress) -> IO[bytes]:
        """The dump inside the decrypted file, which is then deleted."""
        progress.step("Decompressing")
        try:
            with open(compressed, "rb") as handle:
                dump, _ = dbbackup_utils.uncompress_file(handle, name.removesuffix(".gpg"))
        except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as error:
            raise CommandError(f"{name} does not decompress ({error}): corrupt. Refusing to restore it.") from None
        os.remove(compressed)
        progress.detail(f"dump: {dbbackup_utils.handle_size(dump)}")
        return dump

    def _list(self, storage, alias: str) -> None:
        backups = list_backups(storage, alias)
        if not backups:
            self.stdout.write(f"No backup of {alias!r} in the backup storage.")
        for backup in backups:
            self.stdout.write(backup)

    def _check_empty(self, source: dict, target: str) -> None:
        if is_sqlite(source):
            if os.path.exists(target) and os.path.getsize(target) > 0 and sqlite_row_counts(target):
                raise CommandError(
                    f"Target database {target} is not empty: questdb restores only into an empty database. "
                    "Move the file away or name another with --target-database."
                )
            return
        if not is_postgresql(source):
            raise CommandError(f"questdb restores PostgreSQL and SQLite databases, not {source['ENGINE']}.")
        try:
            with pg_connect(source, dbname=target, application_name="questdb-restore") as connection:
                relations = pg_relation_count(connection)
        except psycopg.OperationalError as error:
            if "does not exist" in str(error):
                raise CommandError(
                    f"Target database {target} does not exist on {describe(source, target)}; create it first "
                    f"(createdb {target}, or CREATE DATABASE {target})."
                ) from None
            raise CommandError(f"Cannot connect to {describe(source, target)}: {first_line(error)}") from None
        if relations:
            raise CommandError(
                f"Target database {target} is not empty ({relations} tables, views or sequences): questdb restores "
                "only into an empty database. Create a new one and pass --target-database, or drop and re-create it."
            )

    def _restore(self, alias: str, source: dict, target: str, dump) -> None:
        dump.seek(0)
        if is_sqlite(source):
            with open(target, "wb") as handle:
                copyfileobj(dump, handle)
            return
        connector = get_connector(alias)
        connector.settings["NAME"] = target  # the connector's own copy of the alias's settings
        connector.drop = False  # the target is empty: nothing to clean
        connector.if_exists = False
        try:
            connector.restore_dump(dump)
        except CommandConnectorError as error:
            details = " ".join(str(error).split())[:2000]
            raise CommandError(
                f"pg_restore failed; it ran in one transaction, so {target} is still empty. {details}"
            ) from None

    def _verify(self, source: dict, target: str, manifest: dict, name: str) -> None:
        if is_sqlite(source):
            actual_tables = sqlite_row_counts(target)
        else:
            with pg_connect(source, dbname=target, application_name="questdb-restore") as connection:
                actual_tables = pg_row_counts(connection)
        expected = {(t["schema"], t["name"]): t["rows"] for t in manifest["tables"]}
        actual = {(t["schema"], t["name"]): t["rows"] for t in actual_tables}
        problems = []
        for key in sorted(expected.keys() | actual.keys()):
            table = ".".join(key)
            if key not in actual:
                problems.append(f"{table} is missing")
            elif key not in expected:
                problems.append(f"{table} is not in the backup's manifest")
            elif actual[key] != expected[key]:
                problems.append(f"{table} has {actual[key]} rows, the backup had {expected[key]}")
        if problems:
            raise CommandError(
                f"Restore of {name} into {target} FAILED verification: {'; '.join(problems)}. "
                f"Do not use {target}; drop it before trying again."
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Restored {name} into {target}: {len(actual)} tables, {sum(actual.values())} rows; "
                "every table's row count matches the backup."
            )
        )
