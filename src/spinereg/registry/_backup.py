"""Backup and restore of a whole registry database (registry tables, audit trail, web tables).

SQLite: the online backup API (:meth:`sqlite3.Connection.backup`) copies a consistent
snapshot while writers go on (WAL mode); the copy is checked with ``PRAGMA
integrity_check``.  PostgreSQL: ``pg_dump --format=custom`` (one consistent snapshot,
a repeatable-read transaction) and ``pg_restore``; the client programs must be on the
``PATH`` or in ``/usr/lib/postgresql/*/bin`` and not older than the server.

The site key (CPR pseudonyms) and the web secret key live outside the database and
are not in a backup: back them up separately (docs/web.md, "Backups").
"""

from __future__ import annotations

import glob
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

from spinereg._errors import DatabaseError
from spinereg.registry._settings import resolve_database_url, safe_url

__all__ = ["BackupResult", "backup_registry", "restore_registry"]


@dataclass(frozen=True)
class BackupResult:
    """What a backup or restore did: the database (URL without password), the file, its
    size in bytes, and the rows per registry table in the copy."""

    database: str
    path: Path
    size: int
    counts: dict[str, int]


_COUNTED = ("patients", "operations", "treated_levels", "proms", "complications", "imaging_findings", "audit")


def _sqlite_path(url: str) -> Path | None:
    """The SQLite file of ``url`` (parsed as the registry parses it), or None for PostgreSQL."""
    import dj_database_url

    return Path(str(dj_database_url.parse(url)["NAME"])) if url.startswith("sqlite:") else None


def _sqlite_counts(con: sqlite3.Connection) -> dict[str, int]:
    have = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return {t: int(con.execute(f"SELECT COUNT(*) FROM spinereg_{t}").fetchone()[0])
            for t in _COUNTED if f"spinereg_{t}" in have}


def _check_sqlite(path: Path) -> sqlite3.Connection:
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        result = con.execute("PRAGMA integrity_check").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise DatabaseError(f"{path} is not a readable SQLite database: {exc}") from None
    if result != "ok":
        con.close()
        raise DatabaseError(f"{path} fails SQLite's integrity check: {result}")
    if "spinereg_registry_info" not in {r[0] for r in con.execute("SELECT name FROM sqlite_master")}:
        con.close()
        raise DatabaseError(f"{path} is not a spinereg registry (no registry tables)")
    return con


def _pg_tool(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    if found:
        return found[-1]
    tool = shutil.which(name)
    if tool is None:
        raise DatabaseError(f"{name} not found: install the PostgreSQL client programs (postgresql-client)")
    return tool


def _pg_conn(url: str) -> dict[str, str]:
    """The URL's connection parts, parsed as the registry parses it (the host may be a socket folder)."""
    import dj_database_url

    cfg = dj_database_url.parse(url)
    return {k: str(cfg.get(k) or "") for k in ("HOST", "PORT", "USER", "PASSWORD", "NAME")}


def _pg_env(url: str) -> tuple[list[str], dict[str, str]]:
    """Connection options for pg_dump/pg_restore, the password in the environment (never on the
    command line, where other users could read it)."""
    c = _pg_conn(url)
    args = [flag for opt, key in (("--host", "HOST"), ("--port", "PORT"), ("--username", "USER"))
            if c[key] for flag in (opt, c[key])]
    env = dict(os.environ)
    if c["PASSWORD"]:
        env["PGPASSWORD"] = c["PASSWORD"]
    return [*args, "--dbname", c["NAME"]], env


def _run(cmd: list[str], env: dict[str, str], what: str) -> None:
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=6 * 3600, check=False)
    except OSError as exc:
        raise DatabaseError(f"{what}: cannot run {cmd[0]}: {exc.strerror or exc}") from None
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.strip().splitlines() if ln.strip()]
        raise DatabaseError(f"{what} failed: {lines[-1] if lines else f'exit status {done.returncode}'}")


def _pg_counts(url: str) -> dict[str, int]:
    import psycopg

    c = _pg_conn(url)
    with psycopg.connect(host=c["HOST"] or None, port=c["PORT"] or None, user=c["USER"] or None,
                         password=c["PASSWORD"] or None, dbname=c["NAME"]) as conn:
        out = {}
        for t in _COUNTED:
            row = conn.execute("SELECT to_regclass(%s)", [f"spinereg_{t}"]).fetchone()
            if row and row[0]:
                out[t] = int(conn.execute(f"SELECT COUNT(*) FROM spinereg_{t}").fetchone()[0])  # type: ignore[index]
        return out


def backup_registry(dest: str | os.PathLike[str], url: str | None = None) -> BackupResult:
    """Copy the registry at ``url`` (default: the configured one) to the new file ``dest``.

    Safe while the registry is in use: the copy is one consistent snapshot.  ``dest``
    must not exist (a backup never overwrites a file).  Raises
    :class:`~spinereg.DatabaseError` naming the problem; on failure no partial file is left.
    """
    resolved = resolve_database_url(url)
    target = Path(dest)
    if target.exists():
        raise DatabaseError(f"{target} exists: a backup never overwrites a file; choose a new name")
    if not target.parent.is_dir():
        raise DatabaseError(f"folder {target.parent} does not exist")
    partial = target.with_name(target.name + ".partial")
    src_path = _sqlite_path(resolved)
    try:
        if src_path is not None:
            if not src_path.is_file():
                raise DatabaseError(f"no registry at {src_path}")
            src = sqlite3.connect(str(src_path), timeout=60)
            dst = sqlite3.connect(str(partial))
            try:
                src.backup(dst)  # pages in steps; sees one snapshot in WAL mode
            except sqlite3.Error as exc:
                raise DatabaseError(f"backup of {src_path} failed: {exc}") from None
            finally:
                dst.close()
                src.close()
            with _check_sqlite(partial) as con:
                counts = _sqlite_counts(con)
            con.close()
        else:
            args, env = _pg_env(resolved)
            _run([_pg_tool("pg_dump"), "--format=custom", "--no-owner", "--file", str(partial), *args], env,
                 f"pg_dump of {safe_url(resolved)}")
            counts = _pg_counts(resolved)  # pg_dump's snapshot was taken at its start; counts are indicative
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return BackupResult(safe_url(resolved), target, target.stat().st_size, counts)


def restore_registry(src: str | os.PathLike[str], url: str | None = None, *, replace: bool = False) -> BackupResult:
    """Put the backup ``src`` back as the registry at ``url`` (default: the configured one).

    The target must be empty (no SQLite file, or a PostgreSQL database without registry
    tables) unless ``replace=True``.  SQLite: the backup is checked (integrity, registry
    tables) before anything is touched, copied beside the target and moved into place in one
    rename, so the target is never half-restored; stop the server first.  PostgreSQL:
    ``pg_restore --clean --if-exists --single-transaction`` (all or nothing).
    """
    resolved = resolve_database_url(url)
    source = Path(src)
    if not source.is_file():
        raise DatabaseError(f"no backup file {source}")
    target = _sqlite_path(resolved)
    if target is not None:
        with _check_sqlite(source) as con:
            counts = _sqlite_counts(con)
        con.close()
        if target.exists() and not replace:
            raise DatabaseError(f"{target} exists: restore into a new file, or give --replace (stop the server "
                                "first)")
        target.parent.mkdir(parents=True, exist_ok=True)
        staged = target.with_name(target.name + ".restoring")
        try:
            s = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
            d = sqlite3.connect(str(staged))
            try:
                s.backup(d)
                d.execute("PRAGMA journal_mode=WAL")
            finally:
                d.close()
                s.close()
            for suffix in ("-wal", "-shm"):
                Path(str(target) + suffix).unlink(missing_ok=True)
            os.replace(staged, target)
        except sqlite3.Error as exc:
            raise DatabaseError(f"restore into {target} failed: {exc}") from None
        finally:
            staged.unlink(missing_ok=True)
        return BackupResult(safe_url(resolved), source, source.stat().st_size, counts)
    if not replace and _pg_counts(resolved):
        raise DatabaseError(f"{safe_url(resolved)} holds a registry: restore into an empty database, or give "
                            "--replace")
    args, env = _pg_env(resolved)
    _run([_pg_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--single-transaction", "--exit-on-error",
          *args, str(source)], env, f"pg_restore into {safe_url(resolved)}")
    return BackupResult(safe_url(resolved), source, source.stat().st_size, _pg_counts(resolved))
