#!/usr/bin/env bash
# questdb local hot standby of the primary PostgreSQL server.
#
# Usage: scripts/standby.sh {start|stop|status|wait-replay}
#
#   start        take a base backup of the primary (pg_basebackup -R, fast
#                checkpoint, -X stream) if needed and start a hot standby.
#                Idempotent: a running, healthy standby is left alone.
#   stop         stop the standby (success if it is already stopped).
#   status       report whether the standby is up and streaming.
#                Exit 0 = up and streaming, 1 = up but not streaming,
#                3 = not running.
#   wait-replay  wait (bounded by WAIT_TIMEOUT seconds, default 30) until the
#                standby has replayed the primary's current WAL position.
#
# Environment:
#   STANDBY_DATA_DIR  data directory (default /var/lib/postgresql/questdb-standby)
#   STANDBY_PORT      port of the standby (default 5433)
#   PRIMARY_HOST      primary host (default 127.0.0.1)
#   PRIMARY_PORT      primary port (default 5432)
#   PRIMARY_USER      superuser/replication user on the primary (default postgres)
#   PG_BINDIR         PostgreSQL server binaries (default: matching the
#                     primary's major version under /usr/lib/postgresql)
#   WAIT_TIMEOUT      seconds for wait-replay (default 30)
#
# No replication slot is used on purpose: a stopped standby must never make
# the shared primary retain WAL. If the standby falls so far behind that the
# primary has recycled the WAL it needs, `start` takes a fresh base backup.
set -euo pipefail

STANDBY_DATA_DIR="${STANDBY_DATA_DIR:-/var/lib/postgresql/questdb-standby}"
STANDBY_PORT="${STANDBY_PORT:-5433}"
PRIMARY_HOST="${PRIMARY_HOST:-127.0.0.1}"
PRIMARY_PORT="${PRIMARY_PORT:-5432}"
PRIMARY_USER="${PRIMARY_USER:-postgres}"
WAIT_TIMEOUT="${WAIT_TIMEOUT:-30}"
STANDBY_HOST=127.0.0.1
STANDBY_NAME=questdb_standby
PG_OS_USER=postgres

# Strip a trailing slash so path comparisons work.
STANDBY_DATA_DIR="${STANDBY_DATA_DIR%/}"

log() { printf 'standby: %s\n' "$*"; }
die() { printf 'standby: ERROR: %s\n' "$*" >&2; exit 1; }

# Run a command as the OS user that owns the standby's files.
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u "$PG_OS_USER" -- "$@"
    else
        "$@"
    fi
}

psql_primary() {
    psql -X -q -v ON_ERROR_STOP=1 -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" \
        -U "$PRIMARY_USER" -d postgres -Atc "$1"
}

psql_standby() {
    psql -X -q -v ON_ERROR_STOP=1 -h "$STANDBY_HOST" -p "$STANDBY_PORT" \
        -U "$PRIMARY_USER" -d postgres -Atc "$1"
}

primary_reachable() {
    psql_primary 'SELECT 1' >/dev/null 2>&1
}

require_primary() {
    primary_reachable || die "primary ${PRIMARY_HOST}:${PRIMARY_PORT} is not reachable as ${PRIMARY_USER}"
}

# Locate the PostgreSQL server binaries matching the primary's major version.
find_bindir() {
    if [ -n "${PG_BINDIR:-}" ]; then
        printf '%s\n' "$PG_BINDIR"
        return
    fi
    local major=""
    if primary_reachable; then
        major=$(( $(psql_primary 'SHOW server_version_num') / 10000 ))
    elif [ -f "$STANDBY_DATA_DIR/PG_VERSION" ]; then
        major=$(cat "$STANDBY_DATA_DIR/PG_VERSION")
    fi
    if [ -z "$major" ]; then
        # Fall back to the newest installed server version.
        major=$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/pg_ctl' 2>/dev/null \
            | awk -F/ '{print $5}' | sort -n | tail -n 1)
    fi
    if [ -n "$major" ] && [ -x "/usr/lib/postgresql/$major/bin/pg_ctl" ]; then
        printf '%s\n' "/usr/lib/postgresql/$major/bin"
    elif command -v pg_config >/dev/null 2>&1; then
        pg_config --bindir
    else
        die "cannot find the PostgreSQL server binaries; set PG_BINDIR"
    fi
}

pg_ctl_cmd() {
    as_pg "$BINDIR/pg_ctl" -D "$STANDBY_DATA_DIR" "$@"
}

# True if the standby postmaster for our data dir is running.
is_running() {
    [ -f "$STANDBY_DATA_DIR/postmaster.pid" ] || return 1
    pg_ctl_cmd status >/dev/null 2>&1
}

# Refuse to operate on anything that is not clearly a standby data dir of ours.
check_data_dir_safe() {
    case "$STANDBY_DATA_DIR" in
        "" | / | /var | /var/lib | /var/lib/postgresql | /tmp | /root | /home)
            die "refusing to use STANDBY_DATA_DIR=$STANDBY_DATA_DIR" ;;
        /*) ;;
        *) die "STANDBY_DATA_DIR must be an absolute path (got $STANDBY_DATA_DIR)" ;;
    esac
    if primary_reachable; then
        local primary_dir
        primary_dir=$(psql_primary 'SHOW data_directory')
        if [ "${primary_dir%/}" = "$STANDBY_DATA_DIR" ]; then
            die "STANDBY_DATA_DIR is the primary's data directory"
        fi
    fi
}

# Remove the standby data directory (only if it looks like a PG data dir).
remove_data_dir() {
    if [ -d "$STANDBY_DATA_DIR" ] && [ -n "$(ls -A "$STANDBY_DATA_DIR")" ] \
        && [ ! -f "$STANDBY_DATA_DIR/PG_VERSION" ]; then
        die "$STANDBY_DATA_DIR is not empty and not a PostgreSQL data directory; not touching it"
    fi
    if is_running; then
        pg_ctl_cmd stop -m fast -w -t 60 >/dev/null
    fi
    rm -rf "$STANDBY_DATA_DIR"
}

# Make sure the primary accepts local replication connections (trust).
ensure_primary_hba() {
    local hba changed=0
    hba=$(psql_primary 'SHOW hba_file')
    [ -f "$hba" ] || die "primary hba_file $hba not found (is the primary on this machine?)"
    if ! awk '$1=="local" && $2=="replication" && $3=="all" && $4=="trust" {f=1} END {exit !f}' "$hba"; then
        [ -w "$hba" ] || die "$hba lacks a replication entry and is not writable; add: local replication all trust"
        printf '\n# questdb standby: local replication\nlocal   replication     all                                     trust\n' >>"$hba"
        log "added 'local replication all trust' to $hba"
        changed=1
    fi
    if ! awk '$1=="host" && $2=="replication" && $3=="all" && $4=="127.0.0.1/32" && $5=="trust" {f=1} END {exit !f}' "$hba"; then
        [ -w "$hba" ] || die "$hba lacks a replication entry and is not writable; add: host replication all 127.0.0.1/32 trust"
        printf '# questdb standby: replication over 127.0.0.1\nhost    replication     all             127.0.0.1/32            trust\n' >>"$hba"
        log "added 'host replication all 127.0.0.1/32 trust' to $hba"
        changed=1
    fi
    if [ "$changed" -eq 1 ]; then
        psql_primary 'SELECT pg_reload_conf()' >/dev/null
        local errors
        errors=$(psql_primary 'SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL')
        [ "$errors" = 0 ] || die "primary pg_hba.conf has errors after the change; see pg_hba_file_rules"
    fi
    # The reload is asynchronous: wait until a replication connection works.
    local _
    for _ in $(seq 1 50); do
        if psql -X -q "host=$PRIMARY_HOST port=$PRIMARY_PORT user=$PRIMARY_USER replication=true dbname=postgres" \
            -Atc 'IDENTIFY_SYSTEM' >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    die "primary refuses replication connections from $PRIMARY_HOST as $PRIMARY_USER"
}

check_primary_settings() {
    local wal_level senders
    wal_level=$(psql_primary 'SHOW wal_level')
    senders=$(psql_primary 'SHOW max_wal_senders')
    case "$wal_level" in
        replica | logical) ;;
        *) die "primary has wal_level=$wal_level; a standby needs replica or logical" ;;
    esac
    [ "$senders" -gt 0 ] || die "primary has max_wal_senders=0"
    if [ "$(psql_primary 'SELECT pg_is_in_recovery()')" = t ]; then
        die "${PRIMARY_HOST}:${PRIMARY_PORT} is itself in recovery; point PRIMARY_PORT at the primary"
    fi
}

primary_sysid() {
    psql_primary 'SELECT system_identifier FROM pg_control_system()'
}

standby_sysid() {
    as_pg "$BINDIR/pg_controldata" "$STANDBY_DATA_DIR" 2>/dev/null \
        | awk -F: '/^Database system identifier/ {gsub(/ /, "", $2); print $2}'
}

# Is the existing data dir a usable standby of the current primary?
data_dir_matches_primary() {
    [ -f "$STANDBY_DATA_DIR/PG_VERSION" ] || return 1
    [ -f "$STANDBY_DATA_DIR/standby.signal" ] || return 1
    [ -f "$STANDBY_DATA_DIR/postgresql.conf" ] || return 1
    [ "$(cat "$STANDBY_DATA_DIR/PG_VERSION")" = "$(( $(psql_primary 'SHOW server_version_num') / 10000 ))" ] || return 1
    [ "$(standby_sysid)" = "$(primary_sysid)" ] || return 1
}

# Settings of the standby; hot-standby limits must be >= the primary's.
write_standby_conf() {
    local max_conn max_workers max_senders max_prep max_locks sockdir
    max_conn=$(psql_primary 'SHOW max_connections')
    max_workers=$(psql_primary 'SHOW max_worker_processes')
    max_senders=$(psql_primary 'SHOW max_wal_senders')
    max_prep=$(psql_primary 'SHOW max_prepared_transactions')
    max_locks=$(psql_primary 'SHOW max_locks_per_transaction')
    [ "$max_conn" -ge 200 ] || max_conn=200
    sockdir=/var/run/postgresql
    [ -d "$sockdir" ] || sockdir=/tmp
    as_pg tee "$STANDBY_DATA_DIR/postgresql.conf" >/dev/null <<EOF
# questdb hot standby of ${PRIMARY_HOST}:${PRIMARY_PORT} (written by scripts/standby.sh)
listen_addresses = '${STANDBY_HOST}'
port = ${STANDBY_PORT}
unix_socket_directories = '${sockdir}'
cluster_name = '${STANDBY_NAME}'
max_connections = ${max_conn}
max_worker_processes = ${max_workers}
max_wal_senders = ${max_senders}
max_prepared_transactions = ${max_prep}
max_locks_per_transaction = ${max_locks}
shared_buffers = 128MB
hot_standby = on
hot_standby_feedback = on
max_standby_streaming_delay = 1s
max_standby_archive_delay = 1s
wal_receiver_status_interval = 1s
wal_retrieve_retry_interval = 1s
track_counts = on
track_activities = on
logging_collector = on
log_directory = 'log'
log_filename = 'standby-%a.log'
log_truncate_on_rotation = on
log_rotation_age = 1d
log_rotation_size = 0
log_line_prefix = '%m [%p] '
EOF
    as_pg tee "$STANDBY_DATA_DIR/pg_hba.conf" >/dev/null <<EOF
# questdb hot standby (written by scripts/standby.sh)
local   all             all                                     trust
host    all             all             127.0.0.1/32            trust
EOF
    as_pg touch "$STANDBY_DATA_DIR/pg_ident.conf"
}

base_backup() {
    local parent
    parent=$(dirname "$STANDBY_DATA_DIR")
    if [ ! -d "$parent" ]; then
        mkdir -p "$parent"
    fi
    remove_data_dir
    mkdir -p "$STANDBY_DATA_DIR"
    if [ "$(id -u)" -eq 0 ]; then
        chown "$PG_OS_USER:$PG_OS_USER" "$STANDBY_DATA_DIR"
    fi
    chmod 700 "$STANDBY_DATA_DIR"
    log "taking base backup of ${PRIMARY_HOST}:${PRIMARY_PORT} into $STANDBY_DATA_DIR"
    as_pg "$BINDIR/pg_basebackup" \
        -d "host=$PRIMARY_HOST port=$PRIMARY_PORT user=$PRIMARY_USER application_name=$STANDBY_NAME" \
        -D "$STANDBY_DATA_DIR" -R -X stream -c fast --no-sync
    # The base backup must not bring along the primary's log files.
    rm -rf "$STANDBY_DATA_DIR/log"
    as_pg mkdir -p "$STANDBY_DATA_DIR/log"
    write_standby_conf
    sync -f "$STANDBY_DATA_DIR" 2>/dev/null || sync
}

port_in_use() {
    "$BINDIR/pg_isready" -q -h "$STANDBY_HOST" -p "$STANDBY_PORT" >/dev/null 2>&1 \
        || [ $? -ne 2 ]
}

last_log_lines() {
    local f
    for f in "$STANDBY_DATA_DIR"/log/pg_ctl.log "$STANDBY_DATA_DIR"/log/standby-*.log; do
        [ -f "$f" ] || continue
        printf -- '--- %s\n' "$f" >&2
        tail -n 15 "$f" >&2
    done
}

# Start the postmaster; returns non-zero if it does not come up.
start_server() {
    as_pg mkdir -p "$STANDBY_DATA_DIR/log"
    # 9>&-: the postmaster must not inherit (and so hold) our lock file.
    pg_ctl_cmd start -w -t 60 -l "$STANDBY_DATA_DIR/log/pg_ctl.log" \
        -o "-p $STANDBY_PORT" >/dev/null 9>&-
}

wal_removed_in_log() {
    grep -qs 'has already been removed' "$STANDBY_DATA_DIR"/log/standby-*.log
}

is_streaming() {
    [ "$(psql_standby "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'" 2>/dev/null)" = 1 ]
}

replayed_up_to() {
    # $1 = LSN on the primary
    [ "$(psql_standby "SELECT coalesce(pg_last_wal_replay_lsn() >= '$1'::pg_lsn, false)" 2>/dev/null)" = t ]
}

# After start: confirm the standby streams and catches up with the primary.
verify_catch_up() {
    local timeout=$1 target deadline
    target=$(psql_primary 'SELECT pg_current_wal_lsn()')
    deadline=$(( $(date +%s) + timeout ))
    while [ "$(date +%s)" -lt "$deadline" ]; do
        if wal_removed_in_log; then
            log "standby fell too far behind: the primary has recycled the WAL it needs"
            return 1
        fi
        if is_streaming && replayed_up_to "$target"; then
            return 0
        fi
        sleep 0.2
    done
    log "standby did not catch up within ${timeout}s"
    return 1
}

# Is the process on STANDBY_PORT the standby of our data dir?
port_is_ours() {
    local dir
    dir=$(psql_standby 'SHOW data_directory' 2>/dev/null) || return 1
    [ "${dir%/}" = "$STANDBY_DATA_DIR" ]
}

cmd_start() {
    require_primary
    check_data_dir_safe
    check_primary_settings
    ensure_primary_hba

    if is_running; then
        if data_dir_matches_primary && port_is_ours \
            && [ "$(psql_standby 'SELECT pg_is_in_recovery()')" = t ] \
            && ! wal_removed_in_log; then
            log "already running on ${STANDBY_HOST}:${STANDBY_PORT} (data dir $STANDBY_DATA_DIR)"
            return 0
        fi
        log "running standby is stale or misconfigured; re-creating it"
        remove_data_dir
    fi

    if port_in_use; then
        die "port $STANDBY_PORT is already used by another server; set STANDBY_PORT"
    fi

    local fresh=0
    if data_dir_matches_primary; then
        log "reusing existing data dir $STANDBY_DATA_DIR"
        # Drop old "WAL removed" messages so they are not mistaken for new ones.
        as_pg find "$STANDBY_DATA_DIR/log" -name 'standby-*.log' -exec truncate -s 0 {} + 2>/dev/null || true
    else
        if [ -e "$STANDBY_DATA_DIR" ]; then
            log "existing data dir $STANDBY_DATA_DIR is stale (other primary or incomplete); re-creating it"
        fi
        base_backup
        fresh=1
    fi

    if ! start_server || ! verify_catch_up 20; then
        if [ "$fresh" -eq 1 ]; then
            last_log_lines
            die "freshly created standby did not start or stream; see logs in $STANDBY_DATA_DIR/log"
        fi
        log "existing standby is unusable; taking a fresh base backup"
        base_backup
        if ! start_server || ! verify_catch_up 30; then
            last_log_lines
            die "standby did not start or stream; see logs in $STANDBY_DATA_DIR/log"
        fi
    fi
    log "started hot standby on ${STANDBY_HOST}:${STANDBY_PORT}, streaming from ${PRIMARY_HOST}:${PRIMARY_PORT}"
}

cmd_stop() {
    if [ ! -d "$STANDBY_DATA_DIR" ] || ! is_running; then
        log "not running"
        return 0
    fi
    pg_ctl_cmd stop -m fast -w -t 60 >/dev/null
    log "stopped"
}

cmd_status() {
    if [ ! -d "$STANDBY_DATA_DIR" ] || ! is_running; then
        log "not running (data dir $STANDBY_DATA_DIR)"
        return 3
    fi
    local recovery receiver lag
    recovery=$(psql_standby 'SELECT pg_is_in_recovery()' 2>/dev/null) || {
        log "postmaster running but not accepting connections on ${STANDBY_HOST}:${STANDBY_PORT}"
        return 1
    }
    receiver=$(psql_standby "SELECT status || ' from ' || coalesce(sender_host, '?') || ':' || coalesce(sender_port::text, '?') FROM pg_stat_wal_receiver")
    if [ "$recovery" != t ]; then
        log "running on ${STANDBY_HOST}:${STANDBY_PORT} but NOT in recovery (promoted?)"
        return 1
    fi
    if [ -z "$receiver" ]; then
        log "running on ${STANDBY_HOST}:${STANDBY_PORT}, in recovery, wal receiver: not running (not streaming)"
        return 1
    fi
    lag=""
    if primary_reachable; then
        lag=$(psql_standby "SELECT pg_wal_lsn_diff('$(psql_primary 'SELECT pg_current_wal_lsn()')'::pg_lsn, coalesce(pg_last_wal_replay_lsn(), '0/0'))")
        lag=", replay lag ${lag} bytes"
    fi
    log "running on ${STANDBY_HOST}:${STANDBY_PORT}, in recovery, wal receiver: ${receiver}${lag}"
    case "$receiver" in
        streaming*) return 0 ;;
        *) return 1 ;;
    esac
}

cmd_wait_replay() {
    require_primary
    is_running || die "standby is not running; run: $0 start"
    local target deadline
    target=$(psql_primary 'SELECT pg_current_wal_lsn()')
    deadline=$(( $(date +%s) + WAIT_TIMEOUT ))
    while ! replayed_up_to "$target"; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            die "standby has not replayed up to $target within ${WAIT_TIMEOUT}s (replayed: $(psql_standby 'SELECT pg_last_wal_replay_lsn()' 2>/dev/null || echo unknown))"
        fi
        sleep 0.1
    done
    log "replayed up to primary LSN $target"
}

main() {
    local cmd="${1:-}"
    case "$cmd" in
        start | stop | status | wait-replay) ;;
        *) printf 'usage: %s {start|stop|status|wait-replay}\n' "$0" >&2; exit 2 ;;
    esac
    if [ "$(id -u)" -eq 0 ] && ! id "$PG_OS_USER" >/dev/null 2>&1; then
        die "OS user $PG_OS_USER does not exist"
    fi
    BINDIR=$(find_bindir)
    [ -x "$BINDIR/pg_ctl" ] || die "pg_ctl not found in $BINDIR"

    case "$cmd" in
        start | stop)
            # Serialise concurrent start/stop calls on the same data dir.
            local lock="${STANDBY_DATA_DIR}.lock"
            mkdir -p "$(dirname "$lock")"
            exec 9>"$lock"
            flock -w 180 9 || die "timed out waiting for lock $lock"
            ;;
    esac

    case "$cmd" in
        start) cmd_start ;;
        stop) cmd_stop ;;
        status) cmd_status ;;
        wait-replay) cmd_wait_replay ;;
    esac
}

main "$@"
