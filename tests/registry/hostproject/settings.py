"""A host Django project's settings (as the web registry will have): spinereg.registry
is one installed app among others, and the host chooses the database."""

import os

SECRET_KEY = "test-only-not-secret"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "spinereg.registry",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["HOST_DB"]}}
USE_TZ = True
TIME_ZONE = "Europe/Copenhagen"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
