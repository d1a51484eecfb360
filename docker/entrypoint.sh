#!/usr/bin/env bash
# questdb container entry point.
#
# With no arguments it serves the app: wait (bounded) for the primary, apply
# migrations under a PostgreSQL advisory lock (so that several app containers
# starting at once migrate exactly once), then replace itself with gunicorn.
# Migrations connect as the owner role (DATABASE_OWNER_URL, default DATABASE_URL);
# gunicorn serves as DATABASE_URL's role, the runtime role (README "Database roles").
# With the argument `grpc` it does the same start-up, then serves the gRPC
# services instead (`manage.py grpcserver`, GRPC_PORT, default 50052), as the same role.
# `invalidate-cache` waits for the primary, then replaces itself with the cache invalidation
# consumer (`manage.py invalidate_cache`; it waits for the migrations by itself).
# With other arguments it runs them instead, e.g. `python manage.py backup`.
#
# Environment:
#   WAIT_FOR_DB       0 skips waiting for the primary (default 1)
#   DB_WAIT_TIMEOUT   seconds to wait for the primary (default 60)
#   MIGRATE_ON_START  0 skips migrations, e.g. when a release job runs them (default 1)
#   MIGRATE_LOCK_TIMEOUT  seconds to wait for another container's migrations (default 900)
set -o errexit -o pipefail -o nounset

APP_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$APP_DIR"

log() { printf 'entrypoint: %s\n' "$*" >&2; }

is_off() {
    case "${1,,}" in
        0 | false | no | off) return 0 ;;
        *) return 1 ;;
    esac
}

wait_for_primary() {
    if is_off "${WAIT_FOR_DB:-1}"; then
        log "WAIT_FOR_DB=${WAIT_FOR_DB}: not waiting for the primary"
    else
        python manage.py wait_for_db --timeout "${DB_WAIT_TIMEOUT:-60}"
    fi
}

if [ "${1:-}" = "invalidate-cache" ]; then
    shift
    wait_for_primary
    log "starting the cache invalidation consumer"
    exec python manage.py invalidate_cache "$@"
fi

SERVER=gunicorn
if [ "${1:-}" = "grpc" ] && [ "$#" -eq 1 ]; then
    SERVER=grpc
elif [ "$#" -gt 0 ]; then
    exec "$@"
fi

wait_for_primary

if is_off "${MIGRATE_ON_START:-1}"; then
    log "MIGRATE_ON_START=${MIGRATE_ON_START}: skipping migrations"
else
    python manage.py migrate_locked --lock-timeout "${MIGRATE_LOCK_TIMEOUT:-900}"
fi

if [ "$SERVER" = "grpc" ]; then
    log "starting the gRPC server"
    exec python manage.py grpcserver
fi
log "starting gunicorn"
exec gunicorn -c gunicorn.conf.py questdb.config.wsgi
