#!/usr/bin/env bash
# questdb primary, first start only (run by the postgres image from /docker-entrypoint-initdb.d,
# as the postgres OS user, while the new cluster listens on its socket only):
#   - a role that may stream WAL to the replica (REPLICATION_USER / REPLICATION_PASSWORD);
#   - a pg_hba.conf entry that lets it connect for replication, with a password;
#   - the pgBackRest stanza, so that `archive_command = pgbackrest ... archive-push` succeeds.
set -o errexit -o pipefail -o nounset

REPLICATION_USER="${REPLICATION_USER:-replicator}"
: "${REPLICATION_PASSWORD:?set REPLICATION_PASSWORD for the replication role}"
PGBACKREST_STANZA="${PGBACKREST_STANZA:-questdb}"

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
    --set=repl_user="$REPLICATION_USER" --set=repl_password="$REPLICATION_PASSWORD" <<'SQL'
SELECT format('CREATE ROLE %I WITH REPLICATION LOGIN PASSWORD %L', :'repl_user', :'repl_password')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'repl_user')
\gexec
SQL

if ! grep -Eq "^host[[:space:]]+replication[[:space:]]+${REPLICATION_USER}[[:space:]]" "$PGDATA/pg_hba.conf"; then
    printf '\n# questdb replica (docker/postgres/primary-init.sh)\nhost    replication     %s     all     scram-sha-256\n' \
        "$REPLICATION_USER" >>"$PGDATA/pg_hba.conf"
fi

if command -v pgbackrest >/dev/null 2>&1; then
    pgbackrest --stanza="$PGBACKREST_STANZA" --pg1-path="$PGDATA" --pg1-user="${POSTGRES_USER:-postgres}" stanza-create
else
    echo "primary-init: pgbackrest is not installed; WAL archiving will fail until it is" >&2
fi
