#!/usr/bin/env bash
# Make sure the PostgreSQL and Redis that the test suite needs are installed and running.
# On a fresh Debian machine this installs them; it never changes a running server's settings.
set -euo pipefail

PGPORT="${PGPORT:-5432}"
REDIS_PORT="${REDIS_PORT:-6379}"

need_packages=()
command -v pg_ctlcluster >/dev/null 2>&1 || need_packages+=(postgresql postgresql-contrib)
command -v redis-server >/dev/null 2>&1 || need_packages+=(redis-server)
command -v gpg >/dev/null 2>&1 || need_packages+=(gnupg)
command -v wrk >/dev/null 2>&1 || need_packages+=(wrk)
# h2load: the benchmark's gRPC load generator (HTTP/2, C), as wrk is its HTTP one.
command -v h2load >/dev/null 2>&1 || need_packages+=(nghttp2-client)
command -v pgbouncer >/dev/null 2>&1 || need_packages+=(pgbouncer)
# The reverse proxy of the production topology (docker/nginx/); the slow-client tests run it.
[[ -x /usr/sbin/nginx ]] || command -v nginx >/dev/null 2>&1 || need_packages+=(nginx)
if ((${#need_packages[@]})); then
  echo "services: installing ${need_packages[*]}"
  if [[ $(id -u) -ne 0 ]]; then
    echo "services: need root to apt-get install ${need_packages[*]}" >&2
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_packages[@]}" >/dev/null
fi

if ! pg_isready -q -h 127.0.0.1 -p "$PGPORT"; then
  echo "services: starting PostgreSQL"
  version="$(ls /etc/postgresql | sort -V | tail -1)"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p "$PGPORT" && break; sleep 0.5; done
fi
if ! psql -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres -Atqc "SELECT 1" >/dev/null 2>&1; then
  echo "services: PostgreSQL on 127.0.0.1:$PGPORT does not accept user postgres without a password" >&2
  echo "services: questdb's tests expect trust auth for 127.0.0.1 (see README, 'Running the tests')" >&2
  exit 1
fi

if ! redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  echo "services: starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 30); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.2; done
fi
redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null || { echo "services: Redis did not start" >&2; exit 1; }
echo "services: PostgreSQL on :$PGPORT and Redis on :$REDIS_PORT are up"
