"""questdb settings: every value comes from the environment, read once, here.

With nothing set, questdb runs on an embedded default (a SQLite file and the
local-memory cache). `QUESTDB_ENV=production` turns on the production checks.
The README lists every variable with its default.
"""

import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from questdb.db.aliases import build_databases

BASE_DIR = Path(__file__).resolve().parents[2]

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")  # optional, for local overrides

QUESTDB_ENV = env.str("QUESTDB_ENV", default="development")
PRODUCTION = QUESTDB_ENV == "production"

if PRODUCTION:
    SECRET_KEY = env.str("SECRET_KEY", default="")
    if len(SECRET_KEY) < 50:
        raise ImproperlyConfigured("SECRET_KEY must be set to at least 50 characters in production.")
    DEBUG = env.bool("DEBUG", default=False)
    if DEBUG:
        raise ImproperlyConfigured("DEBUG must be off in production.")
else:
    SECRET_KEY = env.str("SECRET_KEY", default="insecure-development-key-never-use-in-production")
    DEBUG = env.bool("DEBUG", default=True)

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[] if PRODUCTION else ["127.0.0.1", "localhost", "testserver"])

INSTALLED_APPS = [
    "questdb.console.apps.ConsoleAdminConfig",  # django.contrib.admin with questdb's site (questdb/console)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_api_key",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc served from questdb's own static files
    "django_jsonform",
    "pgtrigger",
    "pghistory",
    "pghistory.admin",
    "django_prometheus",
    "dbbackup",
    "axes",
    "questdb",
    "accounts",
    "characters",
    "sessions_app",
    "audit",
]

MIDDLEWARE = [
    "questdb.observability.RequestLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # The console's editors and the offline API docs need static files under gunicorn too.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "questdb.api.middleware.RefuseUnsafeText",
    "questdb.db.middleware.ConsistencyMiddleware",
    "questdb.api.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "questdb.api.middleware.AuthenticationMiddleware",
    "questdb.api.middleware.HistoryMiddleware",
    "questdb.api.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a locked-out admin sign-in into its lockout response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "questdb.config.urls"
WSGI_APPLICATION = "questdb.config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Databases -------------------------------------------------------------
# DATABASE_URL (or DB_HOST/DB_PORT/DB_NAME/DB_USER/DB_PASSWORD) is the primary;
# DB_READ_HOST or DATABASE_REPLICA_URLS add one alias per read replica.
DATABASES = build_databases(env, default_sqlite_path=BASE_DIR / "db.sqlite3")
REPLICA_ALIASES = [alias for alias in DATABASES if alias != "default"]
DATABASE_ROUTERS = ["questdb.db.router.PrimaryReplicaRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# A replica further behind than this (seconds) stops receiving reads.
DB_REPLICA_MAX_LAG = env.float("DB_REPLICA_MAX_LAG", default=5.0)
# How often (seconds) each process re-checks replica health and lag.
DB_REPLICA_CHECK_INTERVAL = env.float("DB_REPLICA_CHECK_INTERVAL", default=0.5)
# Requests under these path prefixes read from the primary only (the staff console reads its own writes).
DB_PRIMARY_ONLY_PATHS = env.list("DB_PRIMARY_ONLY_PATHS", default=["/admin/"])
# Connect timeout (seconds) for replicas: the most a dead replica can cost a request.
DB_REPLICA_CONNECT_TIMEOUT = env.float("DB_REPLICA_CONNECT_TIMEOUT", default=1.0)

# --- Database roles (README "Database roles"; `manage.py db_roles` creates them) --------
# DATABASE_URL is the runtime role that serves. Migrations (migrate_locked) and restores connect with
# DATABASE_OWNER_URL, backups with BACKUP_DATABASE_URL; both default to DATABASE_URL (one URL does all).
DATABASE_OWNER_URL = env.str("DATABASE_OWNER_URL", default="")
BACKUP_DATABASE_URL = env.str("BACKUP_DATABASE_URL", default="")
# The roles db_roles keeps, and their passwords (empty: a new role gets none, an existing one keeps its own).
DB_OWNER_ROLE = env.str("DB_OWNER_ROLE", default="questdb_owner")
DB_OWNER_PASSWORD = env.str("DB_OWNER_PASSWORD", default="")
DB_OWNER_LOGIN = env.bool("DB_OWNER_LOGIN", default=True)  # false: NOLOGIN, migrations then run as a member
DB_RUNTIME_ROLE = env.str("DB_RUNTIME_ROLE", default="questdb_app")
DB_RUNTIME_PASSWORD = env.str("DB_RUNTIME_PASSWORD", default="")
DB_IDENTITY_ROLE = env.str("DB_IDENTITY_ROLE", default="questdb_identity")
DB_IDENTITY_PASSWORD = env.str("DB_IDENTITY_PASSWORD", default="")
DB_READONLY_ROLE = env.str("DB_READONLY_ROLE", default="questdb_readonly")
DB_READONLY_PASSWORD = env.str("DB_READONLY_PASSWORD", default="")
DB_BACKUP_ROLE = env.str("DB_BACKUP_ROLE", default="questdb_backup")
DB_BACKUP_PASSWORD = env.str("DB_BACKUP_PASSWORD", default="")

# --- Cache -----------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
# Redis behind Sentinel: "host:port" of each Sentinel, and the monitored service's name.
REDIS_SENTINELS = env.list("REDIS_SENTINELS", default=[])
REDIS_SENTINEL_SERVICE = env.str("REDIS_SENTINEL_SERVICE", default="questdb")
if REDIS_SENTINELS:
    REDIS_URL = f"redis://{REDIS_SENTINEL_SERVICE}/{env.int('REDIS_DB', default=0)}"
CACHE_TTL = env.int("CACHE_TTL", default=300)
CACHE_KEY_PREFIX = env.str("CACHE_KEY_PREFIX", default="questdb")
# Socket timeouts (milliseconds): a slow or dead Redis costs at most this much.
REDIS_SOCKET_TIMEOUT_MS = env.int("REDIS_SOCKET_TIMEOUT_MS", default=100)
REDIS_CONNECT_TIMEOUT_MS = env.int("REDIS_CONNECT_TIMEOUT_MS", default=100)
# After a Redis error, skip Redis for this long (seconds) and log at most once.
CACHE_RETRY_INTERVAL = env.float("CACHE_RETRY_INTERVAL", default=2.0)
# When invalidation (manage.py invalidate_cache) is further behind the database than this (seconds), for any
# reason, lookups stop trusting the cache and read the database until it has caught up.
CACHE_MAX_STALENESS = env.float("CACHE_MAX_STALENESS", default=1.0)
# Bytes of records each process keeps in front of Redis (questdb/cache/local.py); 0 turns that layer off.
CACHE_LOCAL_MAX_BYTES = env.int("CACHE_LOCAL_MAX_BYTES", default=32 * 1024 * 1024)
# The invalidation consumer: seconds between polls of the change outbox, rows per batch, seconds between a
# follower's attempts to take over the leadership (a PostgreSQL advisory lock).
CACHE_INVALIDATION_POLL = env.float("CACHE_INVALIDATION_POLL", default=0.02)
CACHE_INVALIDATION_BATCH = env.int("CACHE_INVALIDATION_BATCH", default=1000)
CACHE_INVALIDATION_RETRY = env.float("CACHE_INVALIDATION_RETRY", default=0.5)
# With Redis replicas (Sentinel): how many must confirm each invalidation batch before the outbox lets it go.
CACHE_INVALIDATION_REPLICAS = env.int("CACHE_INVALIDATION_REPLICAS", default=0)
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SOCKET_TIMEOUT": REDIS_SOCKET_TIMEOUT_MS / 1000,
                "SOCKET_CONNECT_TIMEOUT": REDIS_CONNECT_TIMEOUT_MS / 1000,
                "CONNECTION_POOL_KWARGS": {"max_connections": env.int("REDIS_MAX_CONNECTIONS", default=50)},
            },
        }
    }
    if REDIS_SENTINELS:
        CACHES["default"]["OPTIONS"].update(
            {
                # questdb's lookups always use the master the Sentinels name, never a Redis replica.
                "CLIENT_CLASS": "django_redis.client.SentinelClient",
                "CONNECTION_FACTORY": "django_redis.pool.SentinelConnectionFactory",
                "SENTINELS": [(host, int(port)) for host, _, port in (s.partition(":") for s in REDIS_SENTINELS)],
            }
        )
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        }
    }

# --- Domain rules ----------------------------------------------------------
MAX_CHARACTERS_PER_USER = env.int("MAX_CHARACTERS_PER_USER", default=5)
CHARACTER_DELETE_GRACE = env.int("CHARACTER_DELETE_GRACE", default=24 * 3600)  # seconds
SESSION_TTL = env.int("SESSION_TTL", default=7 * 24 * 3600)  # seconds
# Roles staff may give a user in the admin; the first is the role of users staff create. The identity
# app may write others (better-auth's admin plugin allows any role, or a comma-separated list).
USER_ROLES = [role.strip() for role in env.list("USER_ROLES", default=["user", "gm", "admin"]) if role.strip()]
if not USER_ROLES:
    raise ImproperlyConfigured("USER_ROLES must name at least one role.")

# --- API -------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["questdb.api.auth.APIKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["questdb.api.auth.HasScopedAPIKey"],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "questdb.api.negotiation.JSONOnly",
    "DEFAULT_PARSER_CLASSES": ["questdb.api.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "questdb.api.pagination.StandardPagination",
    "PAGE_SIZE": env.int("API_PAGE_SIZE", default=50),
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "questdb.api.errors.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["questdb.api.throttling.PerKeyThrottle"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
# Requests per API key, e.g. "100000/min" ("/s", "/min", "/hour", "/day"); empty turns throttling off.
API_THROTTLE_RATE = env.str("API_THROTTLE_RATE", default="100000/min")
# API keys are checked on every request: cache the verdict per key (seconds).
API_KEY_CACHE_SECONDS = env.float("API_KEY_CACHE_SECONDS", default=10.0)
# Most ids one batch lookup (POST .../batch/) may ask for; more is 400 batch_too_large.
API_BATCH_LIMIT = env.int("API_BATCH_LIMIT", default=100)
# Refuse request bodies larger than this (bytes) with 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("MAX_REQUEST_BYTES", default=256 * 1024)

# --- gRPC (`manage.py grpcserver`) ---------------------------------------------
GRPC_LISTEN_ADDR = env.str("GRPC_LISTEN_ADDR", default="0.0.0.0")
GRPC_PORT = env.int("GRPC_PORT", default=50052)
# Worker processes of `manage.py grpcserver`, all on GRPC_PORT (SO_REUSEPORT); like WEB_CONCURRENCY.
GRPC_PROCESSES = env.int("GRPC_PROCESSES", default=os.cpu_count() or 1)
# Threads serving RPCs in each worker process; each holds at most one database connection per alias
# (see the connection budget).
GRPC_MAX_WORKERS = env.int("GRPC_MAX_WORKERS", default=8)
# Seconds in-flight RPCs get to finish after SIGTERM.
GRPC_SHUTDOWN_GRACE = env.float("GRPC_SHUTDOWN_GRACE", default=10.0)
# Seconds between readiness checks behind grpc.health.v1 (SERVING only while the primary answers).
GRPC_HEALTH_CHECK_INTERVAL = env.float("GRPC_HEALTH_CHECK_INTERVAL", default=2.0)
# Port of the gRPC process's own Prometheus endpoint; 0 turns it off.
GRPC_METRICS_PORT = env.int("GRPC_METRICS_PORT", default=9102)

SPECTACULAR_SETTINGS = {
    "TITLE": "questdb API",
    "DESCRIPTION": "Accounts, characters and sessions of the game backend.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "questdb.api.schema.add_common_responses",
    ],
}

# --- Staff console and audit trail ------------------------------------------
# The audit trail is kept by django-pghistory: PostgreSQL triggers write an event row for every
# change to users, characters and session expiries/sign-outs (README, "Staff console").
# Its triggers are installed after `migrate` (audit/apps.py) rather than written into each app's migrations.
PGTRIGGER_MIGRATIONS = False
PGTRIGGER_INSTALL_ON_MIGRATE = False  # audit/apps.py installs them, once their tables exist
# Staff writes are POSTs; the middleware attaches the staff member and URL to each event.
PGHISTORY_MIDDLEWARE_METHODS = ("POST",)
PGHISTORY_ADMIN_MODEL = "audit.AuditEvent"
PGHISTORY_ADMIN_CLASS = "audit.admin.AuditTrailAdmin"
PGHISTORY_ADMIN_ORDERING = ["-pgh_created_at"]

# --- Observability ---------------------------------------------------------
# Comma-separated client addresses allowed to scrape /metrics; empty allows all.
METRICS_ALLOWED_IPS = env.list("METRICS_ALLOWED_IPS", default=[])
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOG_FORMAT = env.str("LOG_FORMAT", default="json" if PRODUCTION else "text")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "questdb.observability.JsonFormatter"},
        "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # The request log line replaces Django's own per-request lines.
        "django.server": {"level": "WARNING"},
        "django.request": {"level": "ERROR"},
    },
}

# --- Backups ---------------------------------------------------------------
# `manage.py backup` dumps the primary (replicas are copies), gzips and GPG-encrypts the
# dump and stores it beside a JSON manifest; `manage.py restore` is its inverse. Both build
# on django-dbbackup (connectors, storage). See docs/operations.md.
BACKUP_DIR = env.str("BACKUP_DIR", default=str(BASE_DIR / "var" / "backups"))
BACKUP_RETENTION_DAYS = env.int("BACKUP_RETENTION_DAYS", default=30)  # by age, in days
BACKUP_GPG_RECIPIENT = env.str("BACKUP_GPG_RECIPIENT", default="")  # key id, fingerprint or e-mail; comma-separated
# Keys: ASCII-armored text, base64 of it, or a path to a key file. Each is imported into a
# throwaway GNUPGHOME; without them the keyring in GNUPGHOME is used.
BACKUP_GPG_PUBLIC_KEY = env.str("BACKUP_GPG_PUBLIC_KEY", default="")  # for backup
BACKUP_GPG_PRIVATE_KEY = env.str("BACKUP_GPG_PRIVATE_KEY", default="")  # for restore only
BACKUP_GPG_PASSPHRASE = env.str("BACKUP_GPG_PASSPHRASE", default="")  # of the private key, if it has one
# Seconds between "still working" lines during a long dump, upload or restore.
BACKUP_PROGRESS_INTERVAL = env.float("BACKUP_PROGRESS_INTERVAL", default=30.0)
BACKUP_STORAGE = env.str("BACKUP_STORAGE", default="filesystem")  # filesystem (BACKUP_DIR) or s3
BACKUP_S3_BUCKET = env.str("BACKUP_S3_BUCKET", default="")
BACKUP_S3_ENDPOINT_URL = env.str("BACKUP_S3_ENDPOINT_URL", default="")  # empty: AWS; set for MinIO, R2, ...
BACKUP_S3_ACCESS_KEY_ID = env.str("BACKUP_S3_ACCESS_KEY_ID", default="")  # empty: boto3's credential chain
BACKUP_S3_SECRET_ACCESS_KEY = env.str("BACKUP_S3_SECRET_ACCESS_KEY", default="")
BACKUP_S3_REGION = env.str("BACKUP_S3_REGION", default="")
BACKUP_S3_PREFIX = env.str("BACKUP_S3_PREFIX", default="questdb-backups")
if BACKUP_STORAGE == "filesystem":
    _backup_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": BACKUP_DIR, "file_permissions_mode": 0o600, "directory_permissions_mode": 0o700},
    }
elif BACKUP_STORAGE == "s3":
    if not BACKUP_S3_BUCKET:
        raise ImproperlyConfigured("BACKUP_STORAGE=s3 needs BACKUP_S3_BUCKET.")
    _backup_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": BACKUP_S3_BUCKET,
            "endpoint_url": BACKUP_S3_ENDPOINT_URL or None,
            "access_key": BACKUP_S3_ACCESS_KEY_ID or None,
            "secret_key": BACKUP_S3_SECRET_ACCESS_KEY or None,
            "region_name": BACKUP_S3_REGION or None,
            "location": BACKUP_S3_PREFIX.strip("/"),
            "default_acl": "private",
            "file_overwrite": False,
        },
    }
else:
    raise ImproperlyConfigured(f"BACKUP_STORAGE must be filesystem or s3, not {BACKUP_STORAGE!r}.")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "dbbackup": _backup_storage,
}
# django-dbbackup: the databases questdb owns are the primary aliases; replicas are copies.
DBBACKUP_DATABASES = [alias for alias in DATABASES if alias not in REPLICA_ALIASES]
# questdb's own PostgreSQL backend (questdb/db/postgresql) is dumped with pg_dump like Django's.
DBBACKUP_CONNECTOR_MAPPING = {"questdb.db.postgresql": "dbbackup.db.postgresql.PgDumpBinaryConnector"}
DBBACKUP_FILENAME_TEMPLATE = "questdb-{databasename}-{datetime}.{extension}"  # databasename: the alias
DBBACKUP_DATE_FORMAT = "%Y-%m-%d-%H%M%S"
DBBACKUP_SEND_EMAIL = False

# --- Admin sign-in ---------------------------------------------------------
# django-axes counts failed admin sign-ins per username and client address and locks that pair out
# (429) after ADMIN_LOGIN_FAILURE_LIMIT failures for ADMIN_LOCKOUT_MINUTES; `manage.py axes_reset`
# (or axes_reset_username NAME) unlocks. https://django-axes.readthedocs.io/en/latest/4_configuration.html
AUTHENTICATION_BACKENDS = [
    "questdb.signin.SignInThrottle",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("ADMIN_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("ADMIN_LOCKOUT_MINUTES", default=15.0) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# Proxies in front of questdb that append to X-Forwarded-For (1 behind the compose file's nginx):
# the client address is then taken from that header, else it is the connection's.
AXES_IPWARE_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0) or None
AXES_IPWARE_META_PRECEDENCE_ORDER = (
    ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"] if AXES_IPWARE_PROXY_COUNT else ["REMOTE_ADDR"]
)

# Errors Django answers before or outside the views are JSON too (the admin keeps its HTML pages).
CSRF_FAILURE_VIEW = "questdb.api.errors.csrf_failure_view"

# --- Django boilerplate ----------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = env.str("STATIC_ROOT", default=str(BASE_DIR / "var" / "static"))
# WhiteNoise serves STATIC_ROOT (the image runs collectstatic); with finders it also serves the apps'
# own static files where collectstatic never ran (a fresh clone under gunicorn).
WHITENOISE_USE_FINDERS = env.bool("WHITENOISE_USE_FINDERS", default=True)

if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    X_FRAME_OPTIONS = "DENY"
