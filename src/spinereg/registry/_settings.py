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

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from spinereg._errors import DatabaseError, IntegrityConflictError

__all__ = ["connect", "default_database_url", "open_registry", "resolve_database_url", "safe_url",
           "translated_errors"]


def default_database_url() -> str:
    home = os.environ.get("SPINEREG_HOME")
    base = Path(home) if home else Path.home() / ".local" / "share" / "spinereg"
    return f"sqlite:///{(base / 'registry.sqlite3').resolve()}"


def resolve_database_url(url: str | None) -> str:
    """The database URL to use: ``url``, else ``SPINEREG_DATABASE_URL``, else the default."""
    return url or os.environ.get("SPINEREG_DATABASE_URL") or default_database_url()


def _db_settings(url: str, *, create: bool = True) -> dict[str, Any]:
    import dj_database_url

    try:
        cfg: dict[str, Any] = dict(dj_database_url.parse(url))
    except (ValueError, KeyError) as exc:
        raise DatabaseError(f"unsupported database URL {safe_url(url)!r}: {exc}") from None
    engine = str(cfg.get("ENGINE", ""))
    if engine.endswith("sqlite3"):
        name = Path(str(cfg["NAME"]))
        if create:
            try:
                name.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseError(f"cannot create the registry's folder {name.parent}: "
                                    f"{exc.strerror or exc}") from None
        cfg["OPTIONS"] = {
            "init_command": ("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; "
                             "PRAGMA cache_size=-262144; PRAGMA temp_store=MEMORY;"),
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
        }
    elif "postgresql" not in engine:
        raise DatabaseError(f"database URL {safe_url(url)!r}: only sqlite:/// and postgresql:// are supported")
    return cfg


def open_registry(url: str | None = None, *, create: bool = True) -> str:
    """Configure Django (once, standalone) and register ``url``; return its connection alias.

    Standalone (no host project), the first registry opened in a process becomes
    Django's ``default`` database; others get their own alias.  Inside a host Django
    project (settings configured, ``spinereg.registry`` installed), ``url=None`` is the
    host's ``default`` database.

    With ``create=False`` the registry must exist already (a command that only reads,
    such as ``export``): a missing SQLite file is a :class:`~spinereg.DatabaseError`, and
    nothing is created.  An unreachable server or an unwritable path is a
    :class:`~spinereg.DatabaseError` too (checked by connecting here).
    """
    from django.conf import settings

    from spinereg.registry import standalone

    if settings.configured and not standalone.configured_here():
        if url is None:
            return "default"
        resolved = url
    else:
        resolved = resolve_database_url(url)
        if not create:
            _must_exist(resolved)
        standalone.configure(_db_settings(resolved, create=create))
    from django.db import connections

    if _URLS.get("default") == resolved or ("default" not in _URLS and standalone.configured_here()):
        _URLS["default"] = resolved
        alias = "default"
    else:
        alias = "reg_" + hashlib.sha256(resolved.encode()).hexdigest()[:12]
        if alias not in connections.settings:
            cfg = _db_settings(resolved, create=create)
            both = connections.configure_settings({"default": connections.settings["default"], alias: cfg})
            connections.settings[alias] = both[alias]
            _URLS[alias] = resolved
    connect(alias, resolved)
    return alias


def connect(alias: str, url: str | None = None) -> None:
    """Open the connection now, so that an unreachable server or an unusable file is one
    clear :class:`~spinereg.DatabaseError` (the URL shown without its password)."""
    from django.db import connections
    from django.db.utils import Error as DjangoDbError

    try:
        connections[alias].ensure_connection()
    except DjangoDbError as exc:
        where = safe_url(url) if url else alias
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseError(f"cannot open the registry database {where}: {reason}") from None


@contextlib.contextmanager
def translated_errors(alias: str) -> Iterator[None]:
    """Database errors as spinereg errors a caller can tell apart: an integrity error
    (a duplicate key, a dangling reference) as :class:`~spinereg.IntegrityConflictError`,
    any other (locked, disk full, server gone, refused by the write guard) as
    :class:`~spinereg.DatabaseError`; the driver's error stays attached as the cause."""
    from django.db import DatabaseError as DjangoDatabaseError
    from django.db import IntegrityError

    try:
        yield
    except IntegrityError as exc:
        raise IntegrityConflictError(f"the registry database refused the write: {_first_line(exc)}") from exc
    except DjangoDatabaseError as exc:
        raise DatabaseError(f"registry database error: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def safe_url(url: str) -> str:
    """A database URL without its password."""
    import re

    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def _must_exist(url: str) -> None:
    """A SQLite registry file must exist for a command that only reads."""
    if url.startswith("sqlite:"):
        import dj_database_url

        name = str(dj_database_url.parse(url).get("NAME", ""))
        if name and name != ":memory:" and not Path(name).is_file():
            raise DatabaseError(f"no registry at {name}: check --db (create one with `spinereg db init`)")


# The URL behind each alias; the first registry opened in a process is "default".
_URLS: dict[str, str] = {}
