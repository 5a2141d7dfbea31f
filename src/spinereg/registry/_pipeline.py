"""The import pipeline: read -> map -> validate -> write (all or nothing)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from spinereg._errors import SiteKeyError, SpineregError
from spinereg.data import ChunkStream, Extract, MappedTable, ValidationReport
from spinereg.registry._read import load_references, registry_counts
from spinereg.registry._service import check_site_key, dataset_code, key_fingerprint, stored_fingerprint
from spinereg.registry._sql import Progress
from spinereg.registry._store import ImportPreview, ImportSummary, import_extract, preview_import

__all__ = ["ImportResult", "import_files"]


@dataclass(frozen=True)
class ImportResult:
    """The validation report, the validated extract, when written the summary, and for a
    dry run against a registry the preview of what the import would change."""

    report: ValidationReport
    extract: Extract
    summary: ImportSummary | None
    preview: ImportPreview | None = None

    @property
    def written(self) -> bool:
        return self.summary is not None


def import_files(alias: str | None, mapping: str | Path, files: Sequence[str | Path], *,
                 key: bytes | None = None, key_file: str | Path | None = None,
                 extract_date: str | None = None, dataset: dict[str, Any] | None = None,
                 dry_run: bool = False, progress: Progress | None = None,
                 timings: dict[str, float] | None = None, update: bool = False) -> ImportResult:
    """Import source files through a mapping into the registry ``alias``.

    Nothing is written when validation finds any error, or with ``dry_run``;
    otherwise everything is written in one transaction.  Reading, mapping and
    validation run in a helper thread, entity by entity, beside the
    transaction: each entity is written once its own checks pass, while the
    next files are read and checked.  The commit waits for the whole
    validation, and any error (or a file that cannot be read or mapped) rolls
    everything back.  Foreign keys may refer to rows already in the registry.
    ``alias`` may be None for a dry run without a database.  ``timings``, when
    given, is filled with the seconds spent: ``validate`` and ``store`` (until
    the commit is done), both counted from the start of the work (after the
    files were matched to the mapping; loading the registry's rows that
    foreign keys may refer to included); ``map``, the part of ``validate``
    spent reading and mapping the files; and, within the store, ``insert``,
    ``audit``, ``references`` and ``commit``.
    """
    from spinereg.data import iter_mapping, load_mapping, read_dataset_meta, validate

    spent = timings if timings is not None else {}
    m = load_mapping(str(mapping))
    extract_day = parse_extract_date(extract_date)
    # a spinereg extract read back keeps its name, source, extract date and synthetic flag
    meta = read_dataset_meta(files) if m.ids == "registry" else {}
    name = (dataset or {}).get("name") or meta.get("name") or m.name or str(mapping)
    meta = {"synthetic": False, "source": str(mapping), **meta, **(dataset or {}), "name": name}
    if extract_day is not None:
        meta["extract_date"] = extract_day
    site_key = key if key is not None else _site_key(alias, key_file, dry_run=dry_run or alias is None)
    fingerprint = key_fingerprint(site_key)
    if alias is not None:
        check_site_key(alias, fingerprint)
    # the files are matched to the mapping's sources now; read and mapped as validation asks
    # source ids are namespaced by the dataset (two hospitals' HOSP-001 are two patients)
    namespace = dataset_code(str(name)) if m.ids == "source" else None
    chunks = _Timed(iter_mapping(m, [Path(f) for f in files], key=site_key, namespace=namespace), spent)
    mapped = time.perf_counter()
    if dry_run or alias is None:
        existing = _reference_rows(alias) if alias is not None else None
        extract, report = validate(chunks, existing=existing, extract_date=extract_day)
        spent["validate"] = time.perf_counter() - mapped
        preview = preview_import(alias, extract, str(name)) if alias is not None and report.ok else None
        return ImportResult(report, extract, None, preview)
    # Validation runs in a helper thread and hands over each entity as soon as its own
    # checks are done; the store writes it (in the one transaction) while the next ones
    # are read and validated.  The registry's rows that the checks across entities
    # compare with are read by the helper (its own connection: the state before this
    # import) only when those checks start.  Before the commit the whole validation must
    # have finished without error, else everything written is rolled back.
    incoming = _Incoming()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="spinereg-validate") as helper:
        def run() -> tuple[Extract, ValidationReport]:
            from django.db import connections

            try:
                return validate(chunks, existing=lambda: _reference_rows(alias), extract_date=extract_day,
                                on_table=incoming.put)
            except BaseException as exc:
                incoming.fail(exc)
                raise
            finally:
                connections[alias].close()  # the helper thread's own connection, if it opened one
                spent["validate"] = time.perf_counter() - mapped

        validating = helper.submit(run)

        def check() -> None:
            if not validating.result()[1].ok:
                raise _InvalidError

        summary: ImportSummary | None = None
        try:
            summary = import_extract(alias, incoming, mapping=str(mapping), files=[str(f) for f in files],
                                     dataset=meta, progress=progress, timings=spent, before_commit=check,
                                     update=update, site_key_fingerprint=fingerprint)
        except _InvalidError:
            pass
        except Exception:
            # rolled back; a failure of the validation itself, or invalid data, is what to report
            failed = validating.exception()
            if failed is not None:
                raise failed from None
            if validating.result()[1].ok:
                raise
        finally:
            spent["store"] = time.perf_counter() - mapped  # beside the validation
        extract, report = validating.result()
    return ImportResult(report, extract, summary)


def parse_extract_date(value: str | None) -> str | None:
    """An extract date given as text: ISO ``YYYY-MM-DD`` only (``03-04-2017`` is
    ambiguous and refused), and a real calendar date."""
    import datetime as dt
    import re

    if value is None or value == "":
        return None
    text = str(value).strip()
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
        raise SpineregError(f"extract date {value!r}: write it as YYYY-MM-DD (e.g. 2017-03-04)")
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise SpineregError(f"extract date {value!r} is not a calendar date") from None


def _site_key(alias: str | None, key_file: str | Path | None, *, dry_run: bool) -> bytes:
    """The pseudonymisation key for an import.

    ``SPINEREG_SITE_KEY`` or an existing key file is used as it is.  Without one, a
    dry run uses a throwaway key (it writes nothing, no key file either); an import
    creates the key file, unless the registry already holds rows written with a key
    (then a missing key file is a mistake: refused, nothing created).
    """
    import os
    import secrets

    from spinereg.data import default_key_path, load_site_key

    path = Path(key_file) if key_file is not None else default_key_path()
    if os.environ.get("SPINEREG_SITE_KEY") or path.exists():
        return load_site_key(path, create=False)
    if dry_run:
        return secrets.token_bytes(32)
    stored = stored_fingerprint(alias) if alias is not None else None
    if stored is not None:
        raise SiteKeyError(f"no site key at {path}, and this registry was written with the key whose fingerprint "
                           f"is {stored}: give that key (--key-file PATH or SPINEREG_SITE_KEY); a new key would "
                           "create every patient again. Nothing was written.")
    return load_site_key(path, create=True)


def _reference_rows(alias: str) -> Extract | None:
    """What validation compares an import with: the registry's rows it may refer to
    (None when the registry holds no data)."""
    if any(v for k, v in registry_counts(alias).items() if k != "audit"):
        return load_references(alias)
    return None


class _Timed(Iterator[MappedTable]):
    """The chunks, adding the seconds spent reading and mapping them to ``spent["map"]``."""

    def __init__(self, chunks: ChunkStream, spent: dict[str, float]) -> None:
        self._chunks = chunks
        self._spent = spent
        spent["map"] = 0.0

    def __next__(self) -> MappedTable:
        started = time.perf_counter()
        try:
            return next(self._chunks)
        finally:
            self._spent["map"] += time.perf_counter() - started

    def complete(self, entity: str) -> bool:
        return self._chunks.complete(entity)


class _InvalidError(Exception):
    """Validation found errors: roll the import back."""


class _Incoming:
    """Validated entities handed from the validating thread to the store (see
    :func:`spinereg.registry._store.import_extract`): ``incoming[name]`` waits for it."""

    def __init__(self) -> None:
        self._ready: dict[str, pd.DataFrame] = {}
        self._error: BaseException | None = None
        self._cond = threading.Condition()

    def put(self, name: str, rows: pd.DataFrame) -> None:
        with self._cond:
            self._ready[name] = rows
            self._cond.notify_all()

    def fail(self, exc: BaseException) -> None:
        with self._cond:
            self._error = exc
            self._cond.notify_all()

    def ready(self, name: str) -> bool:
        """Whether ``self[name]`` would return at once."""
        with self._cond:
            return name in self._ready or self._error is not None

    def __getitem__(self, name: str) -> pd.DataFrame:
        with self._cond:
            while name not in self._ready and self._error is None:
                self._cond.wait()
            if name in self._ready:
                return self._ready.pop(name)
            raise RuntimeError(f"validation stopped before {name}") from self._error
