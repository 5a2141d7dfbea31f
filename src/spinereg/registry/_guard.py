"""The guard around the registry's data: writes only through the audited write service.

Every create, update and delete of registry data goes through
:mod:`spinereg.registry._service`, which writes its audit entries in the same
transaction.  Anything else that would change the entity tables is refused:

* the ORM: the models' base (``EntityModel`` in ``models.py``) refuses ``save()`` and ``delete()``, and its
  queryset refuses ``update()``, ``bulk_create()``, ``bulk_update()`` and
  ``delete()``, outside :func:`writes_allowed`;
* raw SQL: on SQLite an authorizer on every connection denies ``INSERT``,
  ``UPDATE`` and ``DELETE`` on the registry's data tables (lifted on one
  connection while the service writes; SQLite re-authorizes prepared statements
  when the authorizer changes); on PostgreSQL a statement trigger on each table
  refuses them unless the transaction set ``spinereg.write_service`` (the service
  does, with ``set_config(..., true)``: local to its transaction);
* the audit trail (``spinereg_audit``, ``spinereg_import_snapshot``) is
  append-only: database triggers refuse ``UPDATE`` and ``DELETE`` (and
  ``TRUNCATE`` on PostgreSQL) always, for every client of the database.
"""

from __future__ import annotations

import contextlib
import contextvars
import sqlite3
from collections.abc import Iterator
from typing import Any

from spinereg._errors import SpineregError

__all__ = ["AUDIT_TABLES", "DATA_TABLES", "UnauditedWriteError", "check_allowed", "install_guard", "writes_allowed"]

#: The registry's data tables: written only by the service.
DATA_TABLES = ("spinereg_patients", "spinereg_operations", "spinereg_treated_levels", "spinereg_proms",
               "spinereg_complications", "spinereg_imaging_findings", "spinereg_dataset", "spinereg_import_batch",
               "spinereg_registry_info")
#: The audit trail: appended by the service, never changed.
AUDIT_TABLES = ("spinereg_audit", "spinereg_import_snapshot")

_ALLOWED: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar("spinereg_writes", default=frozenset())


class UnauditedWriteError(SpineregError):
    """A write to registry data that bypasses the audited write service (a programming error)."""


def check_allowed(alias: str | None, what: str) -> None:
    if (alias or "default") not in _ALLOWED.get():
        raise UnauditedWriteError(f"{what} on registry data outside the audited write service is refused: "
                                  "write through spinereg.registry.RegistryWriter (or an import)")


_GUARDED = frozenset(DATA_TABLES)
_APPEND_ONLY = frozenset(AUDIT_TABLES)
_WRITE_ACTIONS = (sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE)


def _deny_writes(action: int, arg1: str | None, arg2: str | None, db: str | None, trigger: str | None) -> int:
    """SQLite authorizer outside the service: no INSERT/UPDATE/DELETE on registry tables."""
    if action in _WRITE_ACTIONS and (arg1 in _GUARDED or arg1 in _APPEND_ONLY):
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def _service_writes(action: int, arg1: str | None, arg2: str | None, db: str | None, trigger: str | None) -> int:
    """SQLite authorizer while the service writes: the audit trail stays append-only."""
    if action in (sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE) and arg1 in _APPEND_ONLY:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def install_guard(sender: Any, connection: Any, **kwargs: Any) -> None:
    """``connection_created`` receiver: the SQLite authorizer on every new connection."""
    if connection.vendor == "sqlite":
        connection.connection.set_authorizer(_deny_writes)


@contextlib.contextmanager
def writes_allowed(alias: str, *, atomic: bool = True) -> Iterator[None]:
    """Inside the write service: lift the guard for ``alias`` in this thread, inside a
    transaction (opened here if none is).  ``atomic=False`` (schema migrations, which
    manage their own transactions) lifts it for the session instead."""
    from django.db import connections, transaction

    if alias in _ALLOWED.get():
        yield
        return
    conn = connections[alias]
    with transaction.atomic(using=alias) if atomic else contextlib.nullcontext():
        token = _ALLOWED.set(_ALLOWED.get() | {alias})
        conn.ensure_connection()
        try:
            if conn.vendor == "sqlite":
                # schema migrations rebuild tables (DROP TABLE counts as a delete); the
                # audit trail's append-only triggers still refuse any DELETE or UPDATE
                conn.connection.set_authorizer(_service_writes if atomic else None)
            else:
                with conn.cursor() as cursor:
                    cursor.execute("SELECT set_config('spinereg.write_service', 'on', %s)", [atomic])
            yield
        finally:
            _ALLOWED.reset(token)
            if conn.connection is not None:
                if conn.vendor == "sqlite":
                    conn.connection.set_authorizer(_deny_writes)
                elif not atomic:
                    with conn.cursor() as cursor:
                        cursor.execute("SELECT set_config('spinereg.write_service', '', false)")


def sqlite_triggers() -> list[str]:
    """SQLite: the audit trail is append-only (for every client of the file)."""
    out = []
    for table in AUDIT_TABLES:
        for op in ("UPDATE", "DELETE"):
            out.append(f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
                       f"BEGIN SELECT RAISE(ABORT, 'spinereg: the audit trail is append-only'); END")
    return out


def postgresql_triggers() -> list[str]:
    """PostgreSQL: writes to data tables only from the service; the audit trail append-only."""
    sql = [
        "CREATE OR REPLACE FUNCTION spinereg_write_guard() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF coalesce(current_setting('spinereg.write_service', true), '') <> 'on' THEN "
        "RAISE EXCEPTION 'spinereg: % on % outside the audited write service', TG_OP, TG_TABLE_NAME "
        "USING ERRCODE = 'insufficient_privilege'; END IF; RETURN NULL; END $$",
        "CREATE OR REPLACE FUNCTION spinereg_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "RAISE EXCEPTION 'spinereg: the audit trail is append-only (% on %)', TG_OP, TG_TABLE_NAME "
        "USING ERRCODE = 'insufficient_privilege'; END $$",
    ]
    for table in DATA_TABLES:
        sql.append(f"CREATE TRIGGER {table}_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
                   "FOR EACH STATEMENT EXECUTE FUNCTION spinereg_write_guard()")
    for table in AUDIT_TABLES:
        sql.append(f"CREATE TRIGGER {table}_guard BEFORE INSERT ON {table} "
                   "FOR EACH STATEMENT EXECUTE FUNCTION spinereg_write_guard()")
        sql.append(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {table} "
                   "FOR EACH STATEMENT EXECUTE FUNCTION spinereg_append_only()")
    return sql
