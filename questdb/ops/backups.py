"""Pieces shared by `manage.py backup` and `manage.py restore`.

A backup is two files in the backup storage (django-dbbackup's storage: BACKUP_DIR or S3):

    questdb-<alias>-<YYYY-mm-dd-HHMMSS>.psql.bin.gz.gpg            pg_dump custom format, gzip, GPG
    questdb-<alias>-<YYYY-mm-dd-HHMMSS>.psql.bin.gz.gpg.metadata   the JSON manifest

The manifest keeps django-dbbackup's metadata keys (engine, connector) and adds the
SHA-256 of the stored file, the GPG recipients and the exact row count of every
table, taken in the same snapshot as the dump. `restore` checks all of them.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime

import gnupg
from dbbackup.storage import get_storage as dbbackup_storage
from dbbackup.utils import bytes_to_str, filename_generate
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.files.base import ContentFile
from django.core.management.base import CommandError

MANIFEST_FORMAT = "questdb-backup/1"
# django-dbbackup's name for a backup's metadata file: its own listings skip these.
MANIFEST_SUFFIX = ".metadata"
DATE_RE = re.compile(r"(\d{4}-\d{2}-\d{2}-\d{6})")
CHUNK = 1024 * 1024
GPG_ERR_BAD_PASSPHRASE = 11  # libgpg-error code, in the low 16 bits of gpg's status error numbers

# django-dbbackup logs every command line it runs at DEBUG; questdb prints its own progress.
logging.getLogger("dbbackup").setLevel(logging.WARNING)
logging.getLogger("dbbackup.command").setLevel(logging.WARNING)
# python-gnupg logs key material at DEBUG and every gpg failure as a warning or a traceback;
# questdb reports each failure in one line of its own and never shows a key.
logging.getLogger("gnupg").setLevel(logging.CRITICAL)


def get_storage():
    """django-dbbackup's storage wrapper around STORAGES["dbbackup"], with a clear error if it cannot load."""
    try:
        return dbbackup_storage()
    except (ImportError, ImproperlyConfigured) as error:
        hint = " (BACKUP_STORAGE=s3 needs boto3: pip install boto3)" if settings.BACKUP_STORAGE == "s3" else ""
        raise CommandError(f"Cannot open the {settings.BACKUP_STORAGE} backup storage: {error}{hint}") from None


def check_primary_alias(alias: str, *, replica_error: str) -> None:
    """Refuse an alias that DATABASES does not know, and (with `replica_error`) a read replica's."""
    if alias not in settings.DATABASES:
        raise CommandError(f"Unknown database alias {alias!r}; known: {', '.join(settings.DATABASES)}.")
    if alias in settings.REPLICA_ALIASES:
        raise CommandError(replica_error)


def backup_prefix(alias: str) -> str:
    """File-name prefix of an alias's backups, from DBBACKUP_FILENAME_TEMPLATE (e.g. "questdb-default-")."""
    return filename_generate("x", database_name=alias, wildcard="\0").split("\0")[0]


def date_of(name: str, prefix: str) -> datetime | None:
    """The date in a backup's (or manifest's) name, or None if the name is not one of ours."""
    if not name.startswith(prefix):
        return None
    match = DATE_RE.match(name[len(prefix) :])
    if not match:
        return None
    try:
        return datetime.strptime(match.group(1), settings.DBBACKUP_DATE_FORMAT)
    except ValueError:
        return None


def list_backups(storage, alias: str) -> list[str]:
    """The alias's encrypted backups in the storage, oldest first (manifests excluded)."""
    prefix = backup_prefix(alias)
    names = [
        name
        for name in storage.list_backups(encrypted=True, compressed=True, content_type="db")
        if date_of(name, prefix) is not None and not name.endswith(MANIFEST_SUFFIX)
    ]
    return sorted(names, key=lambda name: (date_of(name, prefix), name))


class Progress:
    """Per-step lines, and a "still ..." line every BACKUP_PROGRESS_INTERVAL seconds during long steps."""

    def __init__(self, command, total: int, label: str = "") -> None:
        self.stdout = command.stdout
        self.total = total
        self.label = f"{label} " if label else ""
        self.number = 0
        self.interval = float(settings.BACKUP_PROGRESS_INTERVAL)
        self.lock = threading.Lock()

    def write(self, line: str) -> None:
        with self.lock:
            self.stdout.write(line)
            self.stdout.flush()

    def step(self, message: str) -> None:
        self.number += 1
        self.write(f"[{self.label}{self.number}/{self.total}] {message}")

    def detail(self, message: str) -> None:
        self.write(f"      {message}")

    @contextlib.contextmanager
    def ticking(self, activity: str, size: Callable[[], int] | None = None) -> Iterator[None]:
        stop = threading.Event()
        started = time.monotonic()

        def tick() -> None:
            while not stop.wait(self.interval):
                extra = ""
                if size is not None:
                    with contextlib.suppress(OSError):
                        extra = f", {bytes_to_str(size())} so far"
                self.detail(f"... still {activity} ({time.monotonic() - started:.0f}s{extra})")

        thread = threading.Thread(target=tick, name="questdb-backup-progress", daemon=True)
        if self.interval > 0:
            thread.start()
        try:
            yield
        finally:
            stop.set()
            if thread.is_alive():
                thread.join()


def key_bytes(value: str, setting: str) -> bytes:
    """A key given in the environment: ASCII-armored text, base64 of a key, or the path of a key file."""
    text = value.strip()
    if text.startswith("-----BEGIN PGP"):
        if "\n" not in text and "\\n" in text:  # armored text squeezed onto one line of an env file
            text = text.replace("\\n", "\n")
        return (text + "\n").encode()
    if "\n" not in text and len(text) < 4096 and os.path.isfile(text):
        with open(text, "rb") as handle:
            return handle.read()
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise CommandError(
            f"{setting} is neither an ASCII-armored OpenPGP key, nor base64 of one, nor the path of a key file."
        ) from None


class _CryptResult(gnupg.Crypt):
    """python-gnupg's encrypt/decrypt result, keeping every status line as well.

    Crypt keeps only the latest status text and recipient and logs ERROR lines: telling a file for another
    key from a wrong passphrase, a tampered file or a file that is not GPG at all needs every line.
    """

    def __init__(self, gpg: gnupg.GPG) -> None:
        super().__init__(gpg)
        self.words: list[list[str]] = []

    def handle_status(self, key: str, value: str) -> None:
        self.words.append([key, *value.split()])
        super().handle_status(key, value)

    @property
    def keywords(self) -> set[str]:
        return {word[0] for word in self.words}

    def values(self, keyword: str) -> list[str]:
        """The first value of each `keyword` line."""
        return [word[1] for word in self.words if word[0] == keyword and len(word) > 1]


class GPG:
    """gpg(1) through python-gnupg, on a throwaway GNUPGHOME holding the key in the setting `key_setting`,
    or, when that setting is empty, on GNUPGHOME.

    Keys travel to gpg on its standard input, never on its command line, and are never printed.
    """

    def __init__(self, *, key_setting: str, passphrase: str = "") -> None:
        self.key = getattr(settings, key_setting)
        self.key_setting = key_setting
        self.passphrase = passphrase
        self.home: str | None = None
        self.temporary = False
        self.result: _CryptResult | None = None

    def __enter__(self) -> GPG:
        if self.key:
            self.home = tempfile.mkdtemp(prefix="questdb-gnupg-")
            self.temporary = True
        else:
            self.home = os.environ.get("GNUPGHOME") or None
        try:
            self.gnupg = self._gnupg()
            if self.key:
                self._import(key_bytes(self.key, self.key_setting))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        if self.temporary and self.home:
            # python-gnupg leaves the gpg-agent of a home it used running; this home is about to go.
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(
                    ["gpgconf", "--homedir", self.home, "--kill", "all"], capture_output=True, timeout=10, check=False
                )
            shutil.rmtree(self.home, ignore_errors=True)

    @property
    def keyring(self) -> str:
        if self.temporary:
            return f"the key in {self.key_setting}"
        return f"the keyring in {self.home or os.path.expanduser('~/.gnupg')} (GNUPGHOME)"

    def _gnupg(self) -> gnupg.GPG:
        try:
            # Without a key of its own, gpg finds GNUPGHOME (or ~/.gnupg) itself.
            instance = gnupg.GPG(gnupghome=self.home if self.temporary else None, encoding="utf-8")
        except OSError:
            raise CommandError("gpg is not installed; install GnuPG (Debian: apt-get install gnupg).") from None
        instance.buffer_size = CHUNK
        instance.result_map = {**gnupg.GPG.result_map, "crypt": self._crypt_result}
        return instance

    def _crypt_result(self, gpg: gnupg.GPG) -> _CryptResult:
        self.result = _CryptResult(gpg)
        return self.result

    def _crypt(self, operation: Callable[..., object], *args, **kwargs) -> _CryptResult:
        """Run python-gnupg's encrypt_file or decrypt_file and return its result.

        When gpg fails before reading all its input, python-gnupg raises the broken pipe of the thread that
        feeds gpg instead of returning the result; gpg's status lines, which say why, are in it all the same.
        """
        self.result = None
        with contextlib.suppress(BrokenPipeError):
            operation(*args, **kwargs)
        return self.result

    def _import(self, data: bytes) -> None:
        # A protected secret key is imported as it is; its passphrase is needed only to decrypt.
        result = self.gnupg.import_keys(data)
        if not result.count:
            raise CommandError(f"{self.key_setting} holds no OpenPGP key that gpg could import.")
        if self.key_setting.endswith("PRIVATE_KEY") and not result.sec_read:
            raise CommandError(f"{self.key_setting} holds no secret key (is it the public key?).")

    def recipient_fingerprints(self, recipient: str) -> list[str]:
        # "--": a recipient is a name to look up, never an option.
        fingerprints = [key["fingerprint"] for key in self.gnupg.list_keys(keys=["--", recipient])]
        if not fingerprints:
            if self.temporary:
                raise CommandError(f"{self.key_setting} holds no key for BACKUP_GPG_RECIPIENT {recipient!r}.")
            raise CommandError(
                f"No public key for BACKUP_GPG_RECIPIENT {recipient!r} in {self.keyring}; "
                "set BACKUP_GPG_PUBLIC_KEY to that key."
            )
        return fingerprints

    def encrypt(self, source, destination: str, recipients: list[str]) -> None:
        """Encrypt the open binary file `source` to `destination` for every recipient."""
        source.seek(0)
        result = self._crypt(
            self.gnupg.encrypt_file,
            source,
            recipients,
            armor=False,
            always_trust=True,
            output=destination,
            extra_args=["--compress-algo", "none"],
        )
        if result.returncode == 0 and result.ok:
            return
        with contextlib.suppress(FileNotFoundError):
            os.remove(destination)
        invalid = [word[2] for word in result.words if word[0] == "INV_RECP" and len(word) > 2]
        if invalid:
            raise CommandError(f"gpg cannot encrypt to {', '.join(invalid)}: unusable or untrusted key.")
        raise CommandError(f"gpg could not encrypt the backup: {_last_line(result.stderr)}")

    def decrypt(self, source: str, destination: str, label: str) -> None:
        """Decrypt the file at `source` into `destination`; refuse anything gpg does not fully trust."""
        if self.passphrase and not self.gnupg.is_valid_passphrase(self.passphrase):
            raise self._passphrase_error(label)  # a passphrase is one line
        result = self._crypt(
            self.gnupg.decrypt_file,
            source,
            passphrase=self.passphrase or None,
            output=destination,
            extra_args=["--pinentry-mode", "loopback"],  # never a pinentry, also without a passphrase
        )
        if result.returncode == 0 and result.ok and not result.keywords & {"BADMDC", "DECRYPTION_FAILED"}:
            return
        with contextlib.suppress(FileNotFoundError):
            os.remove(destination)
        raise self._decrypt_error(result, label)

    def _decrypt_error(self, result: _CryptResult, label: str) -> CommandError:
        """What a failed decryption's status lines say went wrong, most specific first."""
        keywords = result.keywords
        enc_to = result.values("ENC_TO")
        if enc_to and set(enc_to) <= set(result.values("NO_SECKEY")):
            return CommandError(
                f"{label} is encrypted to another key ({', '.join(enc_to)}); no matching secret key in "
                f"{self.keyring}. Set BACKUP_GPG_PRIVATE_KEY to the secret key of BACKUP_GPG_RECIPIENT."
            )
        pkdecrypt = [word for word in result.words if word[:2] == ["ERROR", "pkdecrypt_failed"]]
        codes = [int(word[2]) & 0xFFFF for word in pkdecrypt if len(word) > 2 and word[2].isdigit()]
        bad_passphrase = keywords & {"BAD_PASSPHRASE", "MISSING_PASSPHRASE"} or GPG_ERR_BAD_PASSPHRASE in codes
        if bad_passphrase or ("NEED_PASSPHRASE" in keywords and not self.passphrase):
            return self._passphrase_error(label)
        if pkdecrypt:
            return CommandError(
                f"The secret key in {self.keyring} could not decrypt {label}: {_last_line(result.stderr)}"
            )
        if "NODATA" in keywords and not enc_to:
            return CommandError(f"{label} is not a GPG-encrypted file (corrupt or not a questdb backup).")
        return CommandError(
            f"{label} failed GPG's integrity check: the file was modified or is corrupt. Refusing to restore it. "
            f"(gpg: {_last_line(result.stderr)})"
        )

    def _passphrase_error(self, label: str) -> CommandError:
        problem = "is wrong" if self.passphrase else "is not set"
        return CommandError(
            f"Cannot unlock the secret key for {label}: it is protected by a passphrase and "
            f"BACKUP_GPG_PASSPHRASE {problem}."
        )


def _last_line(text: str) -> str:
    """gpg's last message on its standard error, where python-gnupg also has it write its status lines."""
    lines = [
        line.strip().removeprefix("gpg: ")
        for line in text.splitlines()
        if line.strip() and not line.startswith("[GNUPG:] ")
    ]
    return lines[-1] if lines else "no message"


def write_manifest(storage, name: str, manifest: dict) -> str:
    content = ContentFile(json.dumps(manifest, indent=2, sort_keys=True).encode())
    return storage.storage.save(name + MANIFEST_SUFFIX, content)


def read_manifest(storage, name: str) -> dict:
    manifest_name = name + MANIFEST_SUFFIX
    if not storage.storage.exists(manifest_name):
        raise CommandError(
            f"No manifest {manifest_name} beside {name}: without it the backup cannot be verified. Refusing to restore."
        )
    with storage.read_file(manifest_name) as handle:
        raw = handle.read()
    try:
        manifest = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise CommandError(f"Manifest {manifest_name} is not valid JSON (corrupt). Refusing to restore.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise CommandError(f"Manifest {manifest_name} is not a {MANIFEST_FORMAT} manifest. Refusing to restore.")
    for key in ("sha256", "tables", "engine"):
        if key not in manifest:
            raise CommandError(f"Manifest {manifest_name} lacks {key!r} (corrupt). Refusing to restore.")
    return manifest
