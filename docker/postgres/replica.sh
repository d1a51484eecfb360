#!/usr/bin/env bash
# questdb streaming replica.
#
# First start (no cluster in PGDATA): wait for the primary, clone it with
# `pg_basebackup -R` (which writes standby.signal and primary_conninfo) into
# PGDATA.partial, then rename that to PGDATA, so an interrupted clone is
# started over, never started. Every start: exec postgres as a hot standby that
# streams WAL from the primary.
#
# Environment:
#   PGDATA                  data directory (default /var/lib/postgresql/data/pgdata);
#                           its parent must be writable (the volume)
#   PRIMARY_HOST            primary host (default primary)
#   PRIMARY_PORT            primary port (default 5432)
#   REPLICATION_USER        role with REPLICATION on the primary (default replicator)
#   REPLICATION_PASSWORD    its password (empty for trust/peer authentication)
#   REPLICA_PORT            port this standby listens on (default 5432)
#   REPLICA_LISTEN_ADDRESSES  (default *)
#   REPLICA_RESTORE_COMMAND optional restore_command, e.g. pgbackrest archive-get, to
#                           catch up from the WAL archive when streaming fell behind
#   PRIMARY_WAIT_TIMEOUT    seconds to wait for the primary on first start (default 120)
#   PG_BINDIR               directory of pg_basebackup/postgres (default: from PATH)
# Extra arguments go to postgres, e.g. `-c max_connections=200`.
set -o errexit -o pipefail -o nounset

PGDATA="${PGDATA:-/var/lib/postgresql/data/pgdata}"
PGDATA="${PGDATA%/}"
PRIMARY_HOST="${PRIMARY_HOST:-primary}"
PRIMARY_PORT="${PRIMARY_PORT:-5432}"
REPLICATION_USER="${REPLICATION_USER:-replicator}"
REPLICA_PORT="${REPLICA_PORT:-5432}"
REPLICA_LISTEN_ADDRESSES="${REPLICA_LISTEN_ADDRESSES:-*}"
PRIMARY_WAIT_TIMEOUT="${PRIMARY_WAIT_TIMEOUT:-120}"

log() { printf 'replica: %s\n' "$*"; }
die() { printf 'replica: ERROR: %s\n' "$*" >&2; exit 1; }
pgbin() { if [ -n "${PG_BINDIR:-}" ]; then printf '%s/%s' "$PG_BINDIR" "$1"; else printf '%s' "$1"; fi; }

case "$PGDATA" in
    /*) ;;
    *) die "PGDATA must be an absolute path (got $PGDATA)" ;;
esac

# PostgreSQL refuses to run as root: prepare the parent directory, then start over as postgres.
if [ "$(id -u)" -eq 0 ]; then
    mkdir -p "$(dirname "$PGDATA")"
    chown postgres:postgres "$(dirname "$PGDATA")"
    if command -v gosu >/dev/null 2>&1; then
        exec gosu postgres "$0" "$@"
    fi
    exec runuser -u postgres -- "$0" "$@"
fi

wait_for_primary() {
    local deadline=$(( $(date +%s) + PRIMARY_WAIT_TIMEOUT ))
    until "$(pgbin pg_isready)" -q -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -U "$REPLICATION_USER"; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            die "primary ${PRIMARY_HOST}:${PRIMARY_PORT} not ready after ${PRIMARY_WAIT_TIMEOUT}s"
        fi
        sleep 1
    done
}

clone_primary() {
    local partial="${PGDATA}.partial"
    rm -rf "$partial"
    mkdir -p "$partial"
    chmod 0700 "$partial"
    log "cloning ${PRIMARY_HOST}:${PRIMARY_PORT} into $PGDATA with pg_basebackup -R"
    PGPASSWORD="${REPLICATION_PASSWORD:-}" "$(pgbin pg_basebackup)" \
        --pgdata="$partial" -R \
        --host="$PRIMARY_HOST" --port="$PRIMARY_PORT" --username="$REPLICATION_USER" \
        --wal-method=stream --checkpoint=fast --no-password
    [ -f "$partial/standby.signal" ] || die "pg_basebackup did not write standby.signal"
    # A primary that keeps its configuration outside the data directory (Debian's layout)
    # leaves none in the clone: give the standby a minimal one of its own.
    if [ ! -f "$partial/postgresql.conf" ]; then
        printf '# questdb replica (docker/postgres/replica.sh); settings come from the command line\n' \
            >"$partial/postgresql.conf"
    fi
    if [ ! -f "$partial/pg_hba.conf" ]; then
        printf '# questdb replica (docker/postgres/replica.sh)\nlocal all all peer\nhost all all 127.0.0.1/32 scram-sha-256\nhost all all ::1/128 scram-sha-256\n' \
            >"$partial/pg_hba.conf"
    fi
    [ -f "$partial/pg_ident.conf" ] || : >"$partial/pg_ident.conf"
    if [ -d "$PGDATA" ]; then
        rmdir "$PGDATA" || die "$PGDATA is not empty; not replacing it"
    fi
    mv "$partial" "$PGDATA"
    log "clone complete"
}

if [ -s "$PGDATA/PG_VERSION" ]; then
    log "existing cluster in $PGDATA: starting it"
    [ -f "$PGDATA/standby.signal" ] || log "WARNING: no standby.signal in $PGDATA: it starts as a primary (promoted?)"
else
    if [ -d "$PGDATA" ] && [ -n "$(ls -A "$PGDATA")" ]; then
        die "$PGDATA is not empty but holds no PostgreSQL cluster; not touching it"
    fi
    wait_for_primary
    clone_primary
fi

args=(-D "$PGDATA" -c hot_standby=on -c hot_standby_feedback=on -c port="$REPLICA_PORT"
    -c listen_addresses="$REPLICA_LISTEN_ADDRESSES")
if [ -n "${REPLICA_RESTORE_COMMAND:-}" ]; then
    args+=(-c "restore_command=${REPLICA_RESTORE_COMMAND}")
fi
log "starting hot standby on port ${REPLICA_PORT}, streaming from ${PRIMARY_HOST}:${PRIMARY_PORT}"
exec "$(pgbin postgres)" "${args[@]}" "$@"
