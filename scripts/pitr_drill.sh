#!/usr/bin/env bash
# questdb point-in-time-recovery drill with pgBackRest.
#
# Builds a throwaway PostgreSQL cluster on a spare port inside a temp dir
# (never touching the shared server or /etc/pgbackrest.conf), archives its WAL
# into an encrypted pgBackRest repo, takes a full backup, writes data, and
# restores to a point in time between two marker batches. It then checks that
# exactly the rows committed before the target survived, and prints:
#
#   PITR_RESULT restore_seconds=<f> data_loss_seconds=<f> ... ok=1
#
# restore_seconds   : `pgbackrest restore` + server start until promoted
# data_loss_seconds : recovery target time minus the commit time of the last
#                     transaction recovered (what the drill actually lost)
# archive_timeout_seconds : upper bound of the WAL archive lag in production
#                     terms (a commit reaches the archive within this time)
#
# Environment:
#   DRILL_PORT                   port of the throwaway cluster (default 5499)
#   DRILL_ROWS                   rows seeded after the backup (default 100000)
#   DRILL_MARKER_ROWS            rows in each marker batch (default 1000)
#   DRILL_TARGET_POINT           between-a-b (default) or after-b; after-b is a
#                                self-test: the target then includes batch B,
#                                so the drill must detect it and fail (ok=0)
#   PGBACKREST_REPO_CIPHER_PASS  repo passphrase (random if unset; never shown)
#   PG_BINDIR                    PostgreSQL server binaries (default: newest
#                                under /usr/lib/postgresql)
#   DRILL_KEEP                   1 = keep the temp dir for inspection
#
# Exit status: 0 = drill passed, 1 = mismatch or failure.
set -euo pipefail

DRILL_PORT="${DRILL_PORT:-5499}"
DRILL_ROWS="${DRILL_ROWS:-100000}"
DRILL_MARKER_ROWS="${DRILL_MARKER_ROWS:-1000}"
DRILL_TARGET_POINT="${DRILL_TARGET_POINT:-between-a-b}"
DRILL_KEEP="${DRILL_KEEP:-0}"
ARCHIVE_TIMEOUT=60
STANZA=questdb
PG_OS_USER=postgres
DB=postgres

log() { printf 'pitr-drill: %s\n' "$*"; }
die() { printf 'pitr-drill: ERROR: %s\n' "$*" >&2; exit 1; }

case "$DRILL_TARGET_POINT" in
    between-a-b | after-b) ;;
    *) die "DRILL_TARGET_POINT must be between-a-b or after-b" ;;
esac
for v in DRILL_PORT DRILL_ROWS DRILL_MARKER_ROWS; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer"
done
[ "$DRILL_MARKER_ROWS" -gt 0 ] || die "DRILL_MARKER_ROWS must be > 0"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u "$PG_OS_USER" -- "$@"
    else
        "$@"
    fi
}

# ---------------------------------------------------------------- prerequisites
if ! command -v pgbackrest >/dev/null 2>&1; then
    [ "$(id -u)" -eq 0 ] || die "pgbackrest is not installed and we are not root to install it"
    log "installing pgbackrest"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbackrest) >/dev/null \
        || die "could not install pgbackrest"
fi
if [ "$(id -u)" -eq 0 ] && ! id "$PG_OS_USER" >/dev/null 2>&1; then
    die "OS user $PG_OS_USER does not exist"
fi

if [ -n "${PG_BINDIR:-}" ]; then
    BINDIR="$PG_BINDIR"
else
    major=$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/initdb' 2>/dev/null \
        | awk -F/ '{print $5}' | sort -n | tail -n 1)
    if [ -n "$major" ]; then
        BINDIR="/usr/lib/postgresql/$major/bin"
    elif command -v pg_config >/dev/null 2>&1; then
        BINDIR=$(pg_config --bindir)
    else
        die "cannot find the PostgreSQL server binaries; set PG_BINDIR"
    fi
fi
for b in initdb pg_ctl psql pg_isready; do
    [ -x "$BINDIR/$b" ] || die "$b not found in $BINDIR"
done

if "$BINDIR/pg_isready" -q -h 127.0.0.1 -p "$DRILL_PORT" >/dev/null 2>&1 || [ $? -ne 2 ]; then
    die "port $DRILL_PORT is in use; set DRILL_PORT to a free port"
fi

# ---------------------------------------------------------------- workspace
WORK=$(mktemp -d /tmp/questdb-pitr.XXXXXXXX)
PGDATA_DIR="$WORK/data"
CONF="$WORK/pgbackrest.conf"
SOCK="$WORK/run"
SERVER_LOG="$WORK/log/postgresql.log"

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -f "$PGDATA_DIR/postmaster.pid" ]; then
        as_pg "$BINDIR/pg_ctl" -D "$PGDATA_DIR" stop -m immediate -w -t 30 >/dev/null 2>&1 || true
    fi
    if [ "$rc" -ne 0 ] && [ -d "$WORK/log" ]; then
        local f
        for f in "$SERVER_LOG" "$WORK"/log/"$STANZA"-*.log; do
            [ -f "$f" ] || continue
            printf -- '--- last lines of %s\n' "$f" >&2
            tail -n 10 "$f" >&2
        done
    fi
    if [ "$DRILL_KEEP" = 1 ]; then
        log "keeping $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$WORK/log" "$WORK/repo" "$WORK/lock" "$WORK/spool" "$SOCK"
if [ "$(id -u)" -eq 0 ]; then
    chown -R "$PG_OS_USER:$PG_OS_USER" "$WORK"
fi
chmod 700 "$WORK"

CIPHER_PASS="${PGBACKREST_REPO_CIPHER_PASS:-}"
if [ -z "$CIPHER_PASS" ]; then
    CIPHER_PASS=$(head -c 48 /dev/urandom | base64 | tr -d '\n/+=')
fi
# Do not let pgBackRest pick the passphrase (or other options) up from the
# caller's environment: everything comes from the drill's own config file.
unset PGBACKREST_REPO_CIPHER_PASS PGBACKREST_REPO1_CIPHER_PASS
while IFS= read -r var; do unset "$var"; done < <(compgen -e | grep '^PGBACKREST_' || true)

# The config file holds the passphrase: private to the cluster's OS user.
(
    umask 077
    cat >"$CONF" <<EOF
[global]
repo1-path=$WORK/repo
repo1-cipher-type=aes-256-cbc
repo1-cipher-pass=$CIPHER_PASS
repo1-retention-full=1
log-path=$WORK/log
lock-path=$WORK/lock
spool-path=$WORK/spool
log-level-console=warn
log-level-file=info
log-level-stderr=warn
compress-type=lz4
start-fast=y
process-max=2
archive-timeout=60

[$STANZA]
pg1-path=$PGDATA_DIR
pg1-port=$DRILL_PORT
pg1-socket-path=$SOCK
pg1-user=postgres
EOF
)
unset CIPHER_PASS
if [ "$(id -u)" -eq 0 ]; then
    chown "$PG_OS_USER:$PG_OS_USER" "$CONF"
fi

pgbr() { as_pg pgbackrest --config="$CONF" --stanza="$STANZA" "$@"; }
sql() {
    as_pg "$BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$DRILL_PORT" -U postgres -d "$DB" -Atc "$1"
}
pg_start() {
    as_pg "$BINDIR/pg_ctl" -D "$PGDATA_DIR" -l "$SERVER_LOG" -w -t 120 start >/dev/null \
        || die "the drill cluster did not start"
}

# Wait until the WAL segment $1 (and all before it) is in the archive.
wait_archived() {
    local wal=$1 deadline row
    deadline=$(( $(date +%s) + ARCHIVE_TIMEOUT + 30 ))
    while :; do
        row=$(sql "SELECT coalesce(left(last_archived_wal, 24) COLLATE \"C\" >= '$wal', false), failed_count, coalesce(last_failed_wal, '') FROM pg_stat_archiver")
        [ "${row%%|*}" = t ] && return 0
        if [ "$(date +%s)" -ge "$deadline" ]; then
            die "WAL segment $wal was not archived in time (archiver: $row)"
        fi
        sleep 0.1
    done
}

switch_and_archive() {
    local wal
    wal=$(sql 'SELECT pg_walfile_name(pg_switch_wal())')
    wait_archived "$wal"
}

server_time() {
    # Sub-second target in UTC plus its epoch, both from the server's clock.
    sql "SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00' || '|' || extract(epoch FROM t) FROM clock_timestamp() AS t"
}

# ---------------------------------------------------------------- drill
T_START=$(now)
log "workspace $WORK, cluster on port $DRILL_PORT ($("$BINDIR/pg_ctl" --version))"

as_pg "$BINDIR/initdb" -D "$PGDATA_DIR" -U postgres -A trust -E UTF8 --data-checksums --no-sync >/dev/null \
    || die "initdb failed"
cat >>"$PGDATA_DIR/postgresql.conf" <<EOF

# questdb PITR drill (throwaway cluster)
listen_addresses = '127.0.0.1'
port = $DRILL_PORT
unix_socket_directories = '$SOCK'
max_connections = 20
shared_buffers = 128MB
wal_level = replica
max_wal_senders = 3
archive_mode = on
archive_command = 'pgbackrest --config=$CONF --stanza=$STANZA archive-push %p'
archive_timeout = $ARCHIVE_TIMEOUT
autovacuum = off
log_line_prefix = '%m [%p] '
EOF
pg_start

log "stanza-create + full backup (encrypted repo, aes-256-cbc)"
pgbr stanza-create >/dev/null
pgbr check >/dev/null
T0=$(now)
pgbr backup --type=full >/dev/null
BACKUP_SECONDS=$(elapsed "$T0" "$(now)")

log "seeding $DRILL_ROWS rows"
sql "CREATE TABLE drill_rows (
        id bigserial PRIMARY KEY,
        batch text NOT NULL,
        payload text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT clock_timestamp())"
sql "INSERT INTO drill_rows (batch, payload)
     SELECT 'seed', repeat(md5(i::text), 2) FROM generate_series(1, $DRILL_ROWS) AS i"
switch_and_archive

insert_batch() {
    sql "INSERT INTO drill_rows (batch, payload)
         SELECT '$1', md5(i::text) FROM generate_series(1, $DRILL_MARKER_ROWS) AS i"
}

take_target() {
    sleep 0.3
    local t
    t=$(server_time)
    TARGET="${t%%|*}"
    TARGET_EPOCH="${t##*|}"
    sleep 0.3
}

log "batch A ($DRILL_MARKER_ROWS rows)"
insert_batch A
switch_and_archive
if [ "$DRILL_TARGET_POINT" = between-a-b ]; then
    take_target
fi
log "batch B ($DRILL_MARKER_ROWS rows)"
insert_batch B
if [ "$DRILL_TARGET_POINT" = after-b ]; then
    take_target
fi
# A later commit, so recovery always finds a transaction past the target.
insert_batch C
switch_and_archive
log "target time $TARGET ($DRILL_TARGET_POINT)"

as_pg "$BINDIR/pg_ctl" -D "$PGDATA_DIR" stop -m fast -w -t 60 >/dev/null
log "cluster stopped; restoring to $TARGET"

T0=$(now)
pgbr restore --type=time --target="$TARGET" --target-action=promote --delta >/dev/null \
    || die "pgbackrest restore failed"
T_RESTORED=$(now)
pg_start
deadline=$(( $(date +%s) + 120 ))
until [ "$(sql 'SELECT pg_is_in_recovery()')" = f ]; do
    [ "$(date +%s)" -lt "$deadline" ] || die "recovery did not end within 120s"
    sleep 0.05
done
T_PROMOTED=$(now)
RESTORE_SECONDS=$(elapsed "$T0" "$T_PROMOTED")
RESTORE_CMD_SECONDS=$(elapsed "$T0" "$T_RESTORED")
RECOVERY_SECONDS=$(elapsed "$T_RESTORED" "$T_PROMOTED")

# ---------------------------------------------------------------- verify
counts=$(sql "SELECT count(*) FILTER (WHERE batch = 'seed'),
                     count(*) FILTER (WHERE batch = 'A'),
                     count(*) FILTER (WHERE batch = 'B'),
                     count(*) FILTER (WHERE batch = 'C'),
                     count(*)
              FROM drill_rows")
IFS='|' read -r SEED_N A_N B_N C_N ROWS <<<"$counts"
LAST_REPLAYED=$(sql "SELECT coalesce(extract(epoch FROM pg_last_xact_replay_timestamp())::text, '')")
[ -n "$LAST_REPLAYED" ] || die "no replayed transaction timestamp after recovery"
DATA_LOSS_SECONDS=$(awk -v t="$TARGET_EPOCH" -v l="$LAST_REPLAYED" 'BEGIN { printf "%.3f", t - l }')
DB_SIZE_MB=$(sql "SELECT round(pg_database_size(current_database()) / 1048576.0)")
TIMELINE=$(sql "SELECT timeline_id FROM pg_control_checkpoint()")

errors=()
[ "$SEED_N" -eq "$DRILL_ROWS" ] || errors+=("seed rows: expected $DRILL_ROWS, got $SEED_N")
[ "$A_N" -eq "$DRILL_MARKER_ROWS" ] || errors+=("batch A rows: expected $DRILL_MARKER_ROWS, got $A_N")
[ "$B_N" -eq 0 ] || errors+=("batch B rows: expected 0 (committed after the target), got $B_N")
[ "$C_N" -eq 0 ] || errors+=("batch C rows: expected 0 (committed after the target), got $C_N")
awk -v d="$DATA_LOSS_SECONDS" 'BEGIN { exit !(d >= 0 && d < 300) }' \
    || errors+=("data loss window ${DATA_LOSS_SECONDS}s outside [0, 300)")

OK=1
[ "${#errors[@]}" -eq 0 ] || OK=0
log "backup ${BACKUP_SECONDS}s, restore command ${RESTORE_CMD_SECONDS}s, recovery until promoted ${RECOVERY_SECONDS}s (timeline $TIMELINE)"
log "rows: seed=$SEED_N A=$A_N B=$B_N C=$C_N; total drill time $(elapsed "$T_START" "$(now)")s"
echo "PITR_RESULT restore_seconds=$RESTORE_SECONDS data_loss_seconds=$DATA_LOSS_SECONDS archive_timeout_seconds=$ARCHIVE_TIMEOUT db_size_mb=$DB_SIZE_MB rows=$ROWS batch_a_rows=$A_N batch_b_rows=$B_N backup_seconds=$BACKUP_SECONDS target_point=$DRILL_TARGET_POINT ok=$OK"
if [ "$OK" -ne 1 ]; then
    for e in "${errors[@]}"; do
        printf 'pitr-drill: MISMATCH: %s\n' "$e" >&2
    done
    die "PITR drill failed"
fi
log "PITR drill passed"
