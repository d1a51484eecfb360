# syntax=docker/dockerfile:1
# questdb service image.
#
#   docker build -t questdb .
#   docker run -e DATABASE_URL=... -e SECRET_KEY=... -p 8000:8000 questdb
#   docker run ... questdb python manage.py backup
#   docker run -e DATABASE_URL=... -e SECRET_KEY=... -p 50052:50052 questdb grpc
#
# Stage "builder" compiles the virtualenv; the final stage gets only that
# virtualenv, the project and the runtime libraries (no compiler). The image
# runs as the unprivileged user "questdb". docker/entrypoint.sh waits for the
# primary, migrates under an advisory lock, then execs gunicorn with
# gunicorn.conf.py. Both stages are Debian 12 (bookworm): its postgresql-client
# is 15, the major version of questdb's PostgreSQL servers, so pg_dump and
# pg_restore match the server.

FROM python:3.11-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

# Toolchain for any dependency without a prebuilt wheel; it stays in this stage.
# Versions follow the base image's Debian release: pinning apt package versions
# breaks the build at every Debian point release, which removes the old ones.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential libpq-dev \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

COPY requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir -r /tmp/requirements.txt


FROM python:3.11-slim-bookworm AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    QUESTDB_ENV=production \
    STATIC_ROOT=/app/var/static \
    BACKUP_DIR=/var/lib/questdb/backups \
    GUNICORN_BIND=0.0.0.0:8000

# Runtime only: libpq for psycopg, pg_dump/pg_restore/psql and gpg for backups.
# (Unpinned for the same reason as in the builder stage.)
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpq5 postgresql-client gnupg \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 questdb \
    && useradd --system --uid 10001 --gid questdb --home-dir /home/questdb --create-home \
        --shell /usr/sbin/nologin questdb \
    && install -d -o questdb -g questdb -m 0700 /var/lib/questdb /var/lib/questdb/backups

COPY --from=builder /opt/venv /opt/venv

WORKDIR /app
# The code belongs to root: the service user can read it but not change it.
COPY . /app

# The gRPC code is generated from proto/ at build time (it is not committed).
RUN python -m grpc_tools.protoc -Iproto --python_out=. --grpc_python_out=. proto/questdb/v1/users.proto \
        proto/questdb/v1/characters.proto proto/questdb/v1/sessions.proto

# Static files are collected at build time; the settings need a (dummy) production environment.
RUN SECRET_KEY=collectstatic-only-dummy-secret-key-never-used-at-run-time-0123456789 \
    DATABASE_URL=sqlite:////tmp/collectstatic.sqlite3 \
    python manage.py collectstatic --noinput --verbosity 0 \
    && rm -f /tmp/collectstatic.sqlite3

USER 10001:10001
EXPOSE 8000 50052

# /healthz answers without touching the database. The Host header must be one the
# app allows: the first entry of ALLOWED_HOSTS (localhost if it is empty).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request as u; hosts = [h.strip().lstrip('.') for h in os.environ.get('ALLOWED_HOSTS', '').split(',') if h.strip() and '*' not in h]; port = os.environ.get('GUNICORN_BIND', ':8000').rsplit(':', 1)[-1]; request = u.Request('http://127.0.0.1:' + port + '/healthz', headers={'Host': hosts[0] if hosts else 'localhost'}); sys.exit(0 if u.urlopen(request, timeout=4).status == 200 else 1)"]

ENTRYPOINT ["/app/docker/entrypoint.sh"]
