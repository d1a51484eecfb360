"""`manage.py backup`: dump, compress and encrypt every database questdb owns, then prune old backups.

Per database (the primary aliases, DBBACKUP_DATABASES; replicas are copies and skipped):
count the rows of every table and dump with django-dbbackup's connector (pg_dump
--format=custom) in one exported snapshot, gzip, encrypt with GPG to
BACKUP_GPG_RECIPIENT, store in the backup storage with a JSON manifest (row counts,
SHA-256). Then delete backups older than BACKUP_RETENTION_DAYS (by the date in their
name). It connects with BACKUP_DATABASE_URL (default: DATABASE_URL), the backup role.
Run it daily; docs/operations.md has the cron line and a Kubernetes CronJob.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from typing import IO

import psycopg
from dbbackup import settings as dbbackup_settings
from dbbackup import utils as dbbackup_utils
from dbbackup.db.base import get_connector
from dbbackup.db.exceptions import CommandConnectorError
from django.conf import settings
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS

from questdb.db.aliases import connect_as
from questdb.db.direct import (
    describe,
    first_line,
    is_postgresql,
    is_sqlite,
    pg_connect,
    pg_row_counts,
    sqlite_row_counts,
)
from questdb.ops.backups import (
    GPG,
    MANIFEST_FORMAT,
    Progress,
    backup_prefix,
    check_primary_alias,
    date_of,
    get_storage,
    write_manifest,
)

STEPS = 5


class Command(BaseCommand):
    help = "Back up every database questdb owns (compressed, GPG-encrypted, with a manifest) and prune old backups."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--database",
            action="append",
            dest="databases",
            help="Back up only this alias (repeatable). Default: every primary alias (DBBACKUP_DATABASES).",
        )
        parser.add_argument("--no-prune", action="store_true", help="Do not delete backups older than the retention.")

    def handle(self, *args, databases: list[str] | None, no_prune: bool, **options) -> None:
        # The backup role: SELECT on every table and sequence, nothing more (docs/operations.md).
        connect_as(DEFAULT_DB_ALIAS, settings.BACKUP_DATABASE_URL)
        aliases = databases or list(settings.DBBACKUP_DATABASES)
        for alias in aliases:
            check_primary_alias(
                alias, replica_error=f"{alias!r} is a read replica, a copy of the primary; back up the primary instead."
            )
        recipients = [r.strip() for r in settings.BACKUP_GPG_RECIPIENT.split(",") if r.strip()]
        if not recipients:
            raise CommandError(
                "BACKUP_GPG_RECIPIENT is not set: questdb writes encrypted backups only. Set it to the key id, "
                "fingerprint or e-mail of the backup key, and BACKUP_GPG_PUBLIC_KEY to that public key."
            )
        storage = get_storage()
        started = datetime.now(UTC)
        self.stdout.write(
            f"Backing up {', '.join(aliases)} to {settings.BACKUP_STORAGE} storage "
            f"({settings.BACKUP_DIR if settings.BACKUP_STORAGE == 'filesystem' else settings.BACKUP_S3_BUCKET})."
        )
        written: dict[str, str] = {}
        with GPG(key_setting="BACKUP_GPG_PUBLIC_KEY") as gpg:
            fingerprints = [fpr for recipient in recipients for fpr in gpg.recipient_fingerprints(recipient)]
            for alias in aliases:
                written[alias] = self._backup(alias, storage, gpg, recipients, fingerprints)
        if no_prune:
            self.stdout.write("Not pruning (--no-prune).")
        else:
            self._prune(storage, aliases, set(written.values()))
        elapsed = (datetime.now(UTC) - started).total_seconds()
        self.stdout.write(self.style.SUCCESS(f"Backup finished in {elapsed:.1f}s: {', '.join(written.values())}"))

    def _backup(self, alias: str, storage, gpg: GPG, recipients: list[str], fingerprints: list[str]) -> str:
        connector = get_connector(alias)
        progress = Progress(self, STEPS, label=alias)
        name = connector.generate_filename()
        workdir = tempfile.mkdtemp(prefix="questdb-backup-", dir=dbbackup_settings.TMP_DIR)
        try:
            dump, tables, snapshot, server_version = self._dump(connector, progress)
            encrypted = os.path.join(workdir, "backup.gpg")
            name = self._compress_and_encrypt(dump, name, encrypted, gpg, recipients, progress)
            stored, size, checksum = self._store(storage, encrypted, name, progress)
            manifest = {
                "format": MANIFEST_FORMAT,
                # django-dbbackup's metadata keys, so that its dbrestore can check this backup too.
                "engine": connector.connection.settings_dict["ENGINE"],
                "connector": f"{connector.__module__}.{connector.__class__.__name__}",
                "file": stored,
                "alias": alias,
                "database": os.path.basename(str(connector.settings["NAME"])),
                "server_version": server_version,
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "size": size,
                "sha256": checksum,
                "compression": "gzip",
                "encryption": {"tool": "gpg", "recipients": fingerprints},
                "snapshot": bool(snapshot),
                "tables": tables,
                "total_rows": sum(table["rows"] for table in tables),
            }
            write_manifest(storage, stored, manifest)
            progress.detail(
                f"stored {stored}: {len(tables)} tables, {manifest['total_rows']} rows, sha256 {checksum[:16]}..."
            )
            return stored
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _dump(self, connector, progress: Progress) -> tuple[IO[bytes], list[dict], str | None, str]:
        """The dump, the row counts it must restore to, its snapshot and the server's version."""
        database = connector.settings
        with self._snapshot(database, progress) as (tables, snapshot, server_version):
            if snapshot:
                connector.dump_suffix = f"--snapshot={snapshot}"
            progress.step(f"Dumping {describe(database)} with {connector.__class__.__name__}")
            with progress.ticking("dumping"):
                try:
                    dump = connector.create_dump()
                except CommandConnectorError as error:
                    raise CommandError(f"Dumping {describe(database)} failed: {str(error).strip()}") from None
        progress.detail(f"dump: {dbbackup_utils.handle_size(dump)}")
        return dump, tables, snapshot, server_version

    def _compress_and_encrypt(
        self, dump: IO[bytes], name: str, encrypted: str, gpg: GPG, recipients: list[str], progress: Progress
    ) -> str:
        """gzip the dump and encrypt it into the file `encrypted`; returns the stored name (.gz.gpg)."""
        progress.step("Compressing (gzip)")
        with progress.ticking("compressing"):
            compressed, name = dbbackup_utils.compress_file(dump, name)
        dump.close()
        progress.detail(f"compressed: {dbbackup_utils.handle_size(compressed)}")

        progress.step(f"Encrypting with GPG to {', '.join(recipients)}")
        with progress.ticking("encrypting", size=lambda: os.path.getsize(encrypted)):
            gpg.encrypt(compressed, encrypted, recipients)
        compressed.close()
        return name + ".gpg"

    def _store(self, storage, encrypted: str, name: str, progress: Progress) -> tuple[str, int, str]:
        """Store the encrypted file; returns its stored name, its size and its SHA-256."""
        size = os.path.getsize(encrypted)
        progress.step(f"Storing {name} ({dbbackup_utils.bytes_to_str(size)}) and its manifest")
        with progress.ticking("uploading"), open(encrypted, "rb") as handle:
            checksum = hashlib.file_digest(handle, "sha256").hexdigest()
            handle.seek(0)
            stored = storage.storage.save(name, File(handle, name=name))
        return stored, size, checksum

    @contextlib.contextmanager
    def _snapshot(self, database: dict, progress: Progress):
        """Row counts, and (PostgreSQL) an exported snapshot that the dump then uses: both see the same data."""
        progress.step(f"Counting rows of every table in {describe(database)}")
        if is_sqlite(database):
            tables = sqlite_row_counts(database["NAME"])
            progress.detail(f"{len(tables)} tables, {sum(t['rows'] for t in tables)} rows")
            yield tables, None, "sqlite"
            return
        if not is_postgresql(database):
            raise CommandError(f"questdb backs up PostgreSQL and SQLite databases, not {database['ENGINE']}.")
        try:
            connection = pg_connect(database, application_name="questdb-backup", autocommit=False)
        except psycopg.Error as error:
            raise CommandError(f"Cannot connect to {describe(database)}: {first_line(error)}") from None
        with connection:
            connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            snapshot = connection.execute("SELECT pg_export_snapshot()").fetchone()[0]
            server_version = connection.execute("SHOW server_version").fetchone()[0]
            with progress.ticking("counting rows"):
                tables = pg_row_counts(connection)
            progress.detail(f"{len(tables)} tables, {sum(t['rows'] for t in tables)} rows (snapshot {snapshot})")
            try:
                yield tables, snapshot, server_version
            finally:
                connection.rollback()

    def _prune(self, storage, aliases: list[str], keep: set[str]) -> None:
        days = settings.BACKUP_RETENTION_DAYS
        if days <= 0:
            self.stdout.write("Not pruning: BACKUP_RETENTION_DAYS is 0 (keep every backup).")
            return
        cutoff = datetime.now() - timedelta(days=days)  # names carry local time, as django-dbbackup writes them
        prefixes = {backup_prefix(alias) for alias in aliases}
        names = storage.storage.listdir("")[1]
        doomed = []
        for name in names:
            for prefix in prefixes:
                date = date_of(name, prefix)
                if date is not None and date < cutoff and not any(name.startswith(kept) for kept in keep):
                    doomed.append(name)
                    break
        self.stdout.write(
            f"Pruning backups older than {days} days (before {cutoff:%Y-%m-%d %H:%M}): {len(doomed)} file(s) to delete."
        )
        for name in sorted(doomed):
            storage.delete_file(name)
            self.stdout.write(f"      deleted {name}")
