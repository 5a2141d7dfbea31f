"""The import pipeline: read -> map -> validate -> write (all or nothing)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spinereg.data import Extract
from spinereg.data._validate import ValidationReport
from spinereg.registry._store import ImportSummary, Progress, import_extract, load_extract, registry_counts

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
    otherwise everything is written in one transaction.  Foreign keys may
    refer to rows already in the registry.  ``alias`` may be None for a dry
    run without a database.  ``timings``, when given, is filled with the seconds
    spent: ``map`` (reading and mapping the files), ``validate`` (including
    loading the registry's rows that foreign keys may refer to), ``store`` (the
    transaction) and, within it, ``insert``, ``audit`` and ``commit``.
    """
    from spinereg.data._cpr import load_site_key
    from spinereg.data._mapping import apply_mapping, load_mapping
    from spinereg.data._validate import validate

    spent = timings if timings is not None else {}
    started = time.perf_counter()
    m = load_mapping(str(mapping))
    site_key = key if key is not None else load_site_key(key_file)
    chunks = apply_mapping(m, [Path(f) for f in files], key=site_key)
    mapped = time.perf_counter()
    spent["map"] = mapped - started
    existing = None
    if alias is not None and any(v for k, v in registry_counts(alias).items() if k != "audit"):
        existing = load_extract(alias)
    extract, report = validate(chunks, existing=existing, extract_date=extract_date)
    validated = time.perf_counter()
    spent["validate"] = validated - mapped
    if dry_run or not report.ok or alias is None:
        return ImportResult(report, extract, None)
    meta = _tidy_dataset_meta(files) if str(mapping) == "tidy" else {}
    name = (dataset or {}).get("name") or meta.get("name") or getattr(m, "name", None) or str(mapping)
    meta = {"synthetic": False, "source": str(mapping), **meta, **(dataset or {}), "name": name}
    summary = import_extract(alias, extract, mapping=str(mapping), files=[str(f) for f in files],
                             dataset=meta, progress=progress, timings=spent)
    spent["store"] = time.perf_counter() - validated
    return ImportResult(report, extract, summary)


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
