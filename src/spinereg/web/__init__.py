"""The web registry, staff side: a Django project and app beside the toolkit.

It writes registry data only through :mod:`spinereg.registry`'s audited write
service; the study and report layers never import it.  Start it with
``spinereg serve`` (see docs/web.md).

:func:`configure` sets up Django in this process with the web settings
(:mod:`spinereg.web.settings`), from the same database URL resolution as the
registry's command line; :func:`check_schema` refuses a registry whose schema
is missing or out of date.  Importing this package does not import Django.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["SETTINGS_MODULE", "check_schema", "configure"]

SETTINGS_MODULE = "spinereg.web.settings"


def environment(db: str | None, *, behind_https: bool = False) -> dict[str, str]:
    """The environment variables the web settings read, for database ``db`` (resolved as the CLI does)."""
    from spinereg.registry import resolve_database_url

    env = {"SPINEREG_DATABASE_URL": resolve_database_url(db), "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE}
    if behind_https:
        env["SPINEREG_BEHIND_HTTPS"] = "1"
    return env


def configure(db: str | None = None, *, behind_https: bool = False, must_exist: bool = True) -> str:
    """Configure Django in this process with the web settings; return the connection alias (``"default"``).

    A SQLite registry that does not exist is an error when ``must_exist`` (nothing is
    created).  Django configured already by something else (the registry's standalone
    settings, another project) is an error too: the web settings cannot replace it.
    """
    from django.conf import settings

    from spinereg._errors import DatabaseError, SpineregError
    from spinereg.registry import safe_url

    env = environment(db, behind_https=behind_https)
    url = env["SPINEREG_DATABASE_URL"]
    if settings.configured:
        if getattr(settings, "SETTINGS_MODULE", None) != SETTINGS_MODULE:
            raise SpineregError("Django is configured already by another project in this process: the web "
                                "registry needs its own process")
        return "default"
    if url.startswith("sqlite:"):
        import dj_database_url

        name = Path(str(dj_database_url.parse(url).get("NAME", "")))
        if must_exist and not name.is_file():
            raise DatabaseError(f"no registry at {name}: create it with `spinereg db init`")
    os.environ.update(env)
    import django

    django.setup()
    from django.db import connections
    from django.db.utils import Error as DjangoDbError

    try:
        connections["default"].ensure_connection()
    except DjangoDbError as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DatabaseError(f"cannot open the registry database {safe_url(url)}: {reason}") from None
    return "default"


def check_schema(db: str | None = None) -> None:
    """Refuse a registry whose schema (registry and web tables) is missing or out of date."""
    from spinereg._errors import DatabaseError
    from spinereg.registry import resolve_database_url, safe_url, schema_state

    state = schema_state("default")
    where = safe_url(resolve_database_url(db))
    if state == "missing":
        raise DatabaseError(f"no registry in {where}: create it with `spinereg db init`")
    if state == "outdated":
        raise DatabaseError(f"the registry {where} has an out-of-date schema: run `spinereg db init` to upgrade it")
