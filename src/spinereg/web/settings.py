"""Django settings of the web registry (a host project for ``spinereg.registry``).

Every value comes from the environment, which ``spinereg serve`` and the
``spinereg user`` commands set before Django starts:

``SPINEREG_DATABASE_URL``
    The registry database (else ``$SPINEREG_HOME/registry.sqlite3``, as for the
    command line: :func:`spinereg.registry.resolve_database_url`).
``SPINEREG_SECRET_KEY``
    Django's secret key; else the key file ``$SPINEREG_HOME/web-secret.key``,
    created with mode 0600 on first use.
``SPINEREG_BEHIND_HTTPS``
    ``1`` when a TLS proxy serves the site (``spinereg serve --behind-https``):
    Secure cookies, HSTS, and the proxy's ``X-Forwarded-Proto`` is trusted.
``SPINEREG_ALLOWED_HOSTS``
    Comma-separated host names (default: ``localhost,127.0.0.1,[::1]``).
``SPINEREG_KEY_FILE``
    The site's pseudonymisation key file, for registering and finding patients by
    CPR number (default :func:`spinereg.data.default_key_path`, ``$SPINEREG_HOME/site.key``:
    the file ``spinereg import`` uses; ``SPINEREG_SITE_KEY`` wins over both, as there).
``SPINEREG_WEB_DATASET``
    The dataset that records entered in the web forms belong to (default ``web registry``);
    an edit writes in the edited record's own dataset.

Security: argon2 password hashing, validators (12 characters minimum, the
common-password list, similarity to the user's name), lockout after 5 failed
logins for 15 minutes (django-axes, by user name), 30 minutes idle session
timeout, CSRF on every form, CSP and the other security headers, TOTP
second factor (django-otp; required for role ``admin``).
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

from csp.constants import NONE, SELF

from spinereg._errors import SpineregError
from spinereg.data import default_key_path
from spinereg.registry import resolve_database_url

_HOME = Path(os.environ.get("SPINEREG_HOME") or Path.home() / ".local" / "share" / "spinereg")


def _secret_key() -> str:
    env = os.environ.get("SPINEREG_SECRET_KEY")
    if env:
        if len(env) < 50:
            raise SpineregError("SPINEREG_SECRET_KEY is too short: use at least 50 random characters")
        return env
    path = _HOME / "web-secret.key"
    try:
        _HOME.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            raise SpineregError(f"secret key file {path} is readable by others; chmod 600 it") from None
        key = path.read_text(encoding="ascii").strip()
        if len(key) >= 50:
            return key
        raise SpineregError(f"secret key file {path} is too short (delete it: a new one is made)") from None
    except OSError as exc:
        raise SpineregError(f"cannot create the secret key file {path}: {exc.strerror or exc}") from None
    key = secrets.token_urlsafe(64)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key + "\n")
    return key


def _database() -> dict[str, object]:
    """The registry database, opened as the registry opens it (SQLite: WAL, immediate transactions)."""
    import dj_database_url

    url = resolve_database_url(None)
    cfg: dict[str, object] = dict(dj_database_url.parse(url))
    engine = str(cfg.get("ENGINE", ""))
    if engine.endswith("sqlite3"):
        cfg["OPTIONS"] = {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
        }
        # one connection per worker, kept between requests: opening the file, the pragmas and the write
        # guard on every request cost ~3 ms of a ~9 ms API write.  (Restoring a backup over the live
        # file needs the server stopped, as before: docs/web.md.)
        cfg["CONN_MAX_AGE"] = 60
    elif "postgresql" not in engine:
        raise SpineregError("the web registry needs a sqlite:/// or postgresql:// database URL")
    else:
        cfg["CONN_MAX_AGE"] = 60
        cfg["CONN_HEALTH_CHECKS"] = True
    return cfg


BEHIND_HTTPS = os.environ.get("SPINEREG_BEHIND_HTTPS", "") == "1"
SECRET_KEY = _secret_key()
DEBUG = False
ALLOWED_HOSTS = [h.strip() for h in os.environ.get("SPINEREG_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")
                 if h.strip()]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "csp",
    "spinereg.registry",
    "spinereg.followup",
    "spinereg.web",
    "spinereg.fhir_api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "spinereg.web.middleware.StaffAccessMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "spinereg.web.urls"
WSGI_APPLICATION = "spinereg.web.wsgi.application"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [],
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.template.context_processors.i18n",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
        "spinereg.web.context.registry",
    ]},
}]

DATABASES = {"default": _database()}

# --- registry writes from the web forms ----------------------------------------------------------------
SPINEREG_KEY_FILE = os.environ.get("SPINEREG_KEY_FILE") or str(default_key_path())
SPINEREG_WEB_DATASET = os.environ.get("SPINEREG_WEB_DATASET") or "web registry"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- passwords and login --------------------------------------------------------------------------------
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = timedelta(minutes=15)
# Lock by user name: guessing one account's password is stopped from any address.  Not by address too
# (axes.W006): a hospital's staff share one outgoing address, and 5 typos would lock them all out.
AXES_LOCKOUT_PARAMETERS = ["username"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "web/locked_out.html"
AXES_VERBOSE = False  # axes' own log lines carry the user name and IP address: we log events ourselves

OTP_TOTP_ISSUER = "spinereg"

# --- sessions, cookies, headers -------------------------------------------------------------------------
SESSION_COOKIE_AGE = 30 * 60  # idle timeout: the expiry moves on with every request
#: Absolute timeout: a new login after this many seconds, however active (SPINEREG_SESSION_MAX_AGE; 12 h).
SPINEREG_SESSION_MAX_AGE = int(os.environ.get("SPINEREG_SESSION_MAX_AGE") or 12 * 3600)
SESSION_SAVE_EVERY_REQUEST = True
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    },
}
if BEHIND_HTTPS:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = 365 * 24 * 3600
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = False  # the browsers' preload list is the domain owner's decision (security.W021)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    CSRF_TRUSTED_ORIGINS = [f"https://{h}" for h in ALLOWED_HOSTS if not h.startswith("[")]

SILENCED_SYSTEM_CHECKS = ["axes.W006", "security.W021"]  # the two decisions above

# --- language, time, static files -----------------------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("da", "Dansk")]
LOCALE_PATHS = [str(Path(__file__).resolve().parent / "locale")]
USE_I18N = True
USE_TZ = True
TIME_ZONE = "Europe/Copenhagen"
STATIC_URL = "/static/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True  # serve the apps' static files directly: no collectstatic step

# --- logging: authentication events without personal data ----------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "spinereg.web.auth": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "axes": {"handlers": ["stderr"], "level": "ERROR", "propagate": False},
        "django": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
    },
}
