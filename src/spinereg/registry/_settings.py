"""Django configuration for the embedded registry (no settings module needed).

spinereg configures Django itself, once per process, the first time a
registry database is opened.  Each database URL becomes a connection alias,
so one process can use several registries (e.g. tests on SQLite and
PostgreSQL side by side).

Database URLs
-------------
* ``sqlite:///ABSOLUTE/PATH.sqlite3`` (the default is
  ``$SPINEREG_HOME/registry.sqlite3``, ``SPINEREG_HOME`` defaulting to
  ``~/.local/share/spinereg``); opened in WAL mode with
  ``synchronous=NORMAL`` and immediate transactions;
* ``postgresql://user:password@host:port/dbname`` (or ``?host=/socket/dir``).

Resolution order: the explicit ``--db`` argument, then the environment
variable ``SPINEREG_DATABASE_URL``, then the default SQLite file.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from spinereg._errors import SpineregError

__all__ = ["default_database_url", "open_registry", "resolve_database_url"]


def default_database_url() -> str:
    home = os.environ.get("SPINEREG_HOME")
    base = Path(home) if home else Path.home() / ".local" / "share" / "spinereg"
    return f"sqlite:///{(base / 'registry.sqlite3').resolve()}"


def resolve_database_url(url: str | None) -> str:
    """The database URL to use: ``url``, else ``SPINEREG_DATABASE_URL``, else the default."""
    return url or os.environ.get("SPINEREG_DATABASE_URL") or default_database_url()


def _setup_django(default_url: str) -> None:
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            INSTALLED_APPS=[
                "django.contrib.contenttypes",
                "django.contrib.auth",
                "spinereg.registry",
            ],
            DATABASES={"default": _db_settings(default_url)},
            USE_TZ=True,
            TIME_ZONE="UTC",
            DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
            LOGGING_CONFIG=None,
        )
        django.setup()


def _db_settings(url: str) -> dict[str, Any]:
    import dj_database_url

    try:
        cfg: dict[str, Any] = dict(dj_database_url.parse(url))
    except (ValueError, KeyError) as exc:
        raise SpineregError(f"unsupported database URL {url!r}: {exc}") from None
    engine = str(cfg.get("ENGINE", ""))
    if engine.endswith("sqlite3"):
        name = Path(str(cfg["NAME"]))
        name.parent.mkdir(parents=True, exist_ok=True)
        cfg["OPTIONS"] = {
            "init_command": ("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; "
                             "PRAGMA cache_size=-262144; PRAGMA temp_store=MEMORY;"),
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
        }
    elif "postgresql" not in engine:
        raise SpineregError(f"database URL {url!r}: only sqlite:/// and postgresql:// are supported")
    return cfg


def open_registry(url: str | None = None) -> str:
    """Configure Django (once) and register ``url``; return its connection alias.

    The first registry opened in a process becomes Django's ``default``
    database; others get their own alias.
    """
    resolved = resolve_database_url(url)
    _setup_django(resolved)
    from django.db import connections

    if _URLS.get("default") == resolved or "default" not in _URLS:
        _URLS["default"] = resolved
        return "default"
    alias = "reg_" + hashlib.sha256(resolved.encode()).hexdigest()[:12]
    if alias not in connections.settings:
        cfg = _db_settings(resolved)
        both = connections.configure_settings({"default": connections.settings["default"], alias: cfg})
        connections.settings[alias] = both[alias]
        _URLS[alias] = resolved
    return alias


# The URL behind each alias; the first registry opened in a process is "default".
_URLS: dict[str, str] = {}
