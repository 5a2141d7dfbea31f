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

from spinereg.data import Extract
from spinereg.data._mapped import MappedTable
from spinereg.data._mapping import MappedChunks
from spinereg.data._validate import ValidationReport
from spinereg.registry._store import ImportSummary, Progress, import_extract, load_references, registry_counts

__all__ = ["ImportResult", "import_files"]


@dataclass(frozen=True)
class ImportResult:
    """The validation report, the validated extract and, when written, the summary."""

    report: ValidationReport
    extract: Extract
    summary: ImportSummary | None

    @property
    def written(self) -> bool:
        return self.summary is not None


def import_files(alias: str | None, mapping: str | Path, files: Sequence[str | Path], *,
                 key: bytes | None = None, key_file: str | Path | None = None,
                 extract_date: str | None = None, dataset: dict[str, Any] | None = None,
                 dry_run: bool = False, progress: Progress | None = None,
                 timings: dict[str, float] | None = None) -> ImportResult:
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
    from spinereg.data._cpr import load_site_key
    from spinereg.data._mapping import iter_mapping, load_mapping
    from spinereg.data._validate import validate

    spent = timings if timings is not None else {}
    m = load_mapping(str(mapping))
    site_key = key if key is not None else load_site_key(key_file)
    # the files are matched to the mapping's sources now; read and mapped as validation asks
    chunks = _Timed(iter_mapping(m, [Path(f) for f in files], key=site_key), spent)
    mapped = time.perf_counter()
    if dry_run or alias is None:
        existing = _reference_rows(alias) if alias is not None else None
        extract, report = validate(chunks, existing=existing, extract_date=extract_date)
        spent["validate"] = time.perf_counter() - mapped
        return ImportResult(report, extract, None)
    meta = _tidy_dataset_meta(files) if str(mapping) == "tidy" else {}
    name = (dataset or {}).get("name") or meta.get("name") or getattr(m, "name", None) or str(mapping)
    meta = {"synthetic": False, "source": str(mapping), **meta, **(dataset or {}), "name": name}
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
                return validate(chunks, existing=lambda: _reference_rows(alias), extract_date=extract_date,
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
                                     dataset=meta, progress=progress, timings=spent, before_commit=check)
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


def _reference_rows(alias: str) -> Extract | None:
    """What validation compares an import with: the registry's rows it may refer to
    (None when the registry holds no data)."""
    if any(v for k, v in registry_counts(alias).items() if k != "audit"):
        return load_references(alias)
    return None


class _Timed(Iterator[MappedTable]):
    """The chunks, adding the seconds spent reading and mapping them to ``spent["map"]``."""

    def __init__(self, chunks: MappedChunks, spent: dict[str, float]) -> None:
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


def _tidy_dataset_meta(files: Sequence[str | Path]) -> dict[str, Any]:
    """The dataset metadata of a spinereg tidy export (its ``dataset.json``), so that a
    re-imported export keeps its name, source, extract date and synthetic flag."""
    import json

    for f in files:
        meta_path = Path(f).parent / "dataset.json"
        if meta_path.exists():
            try:
                doc = json.loads(meta_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return {}
            return {k: doc[k] for k in ("name", "synthetic", "source", "extract_date") if k in doc}
    return {}
