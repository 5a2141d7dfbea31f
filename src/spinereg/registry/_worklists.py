"""Worklists: operations with missing forms, and the data-quality problems of the registry's rows.

Both are tidy DataFrames with the dataset and the site (``hospital``,
``department`` of the operation) of each row, so a web page can show them per
site (a data access group).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from spinereg.data import MappedTable, Provenance, entities, validate
from spinereg.registry._sql import is_sqlite, table_name

__all__ = ["MISSING_FORMS", "missing_forms", "quality_problems"]

#: The forms :func:`missing_forms` looks for, and when one is missing.
MISSING_FORMS: dict[str, str] = {
    "treated_levels": "a vertebroplasty or kyphoplasty has no treated level (the operation form is incomplete)",
    "imaging_review": "a treated level has no imaging finding (post-operative images await review)",
    "baseline_questionnaire": "the operation has no baseline questionnaire",
}

#: Operations whose form lists treated levels (with the cement volume of each).
CEMENT_PROCEDURES = ("vertebroplasty", "kyphoplasty")
_CEMENT = ", ".join(f"'{p}'" for p in CEMENT_PROCEDURES)
_SITE_COLUMNS = ["dataset", "hospital", "department"]


def _dataset_filter(dataset: str | None) -> tuple[str, list[Any]]:
    return ("WHERE d.name = %s", [dataset]) if dataset is not None else ("", [])


def missing_forms(alias: str, *, dataset: str | None = None) -> pd.DataFrame:
    """Operations with a missing form, one row per operation and missing form.

    Parameters
    ----------
    alias : str
        Connection alias.
    dataset : str, optional
        Only the operations of this dataset (by name).

    Returns
    -------
    DataFrame
        ``dataset, hospital, department, operation_id, patient_id, date, form, levels``,
        sorted by dataset, hospital, date and operation.  ``form`` is one of
        :data:`MISSING_FORMS`:

        * ``treated_levels``: a cement augmentation (vertebroplasty, kyphoplasty:
          :data:`CEMENT_PROCEDURES`) has no treated level;
        * ``imaging_review``: at least one treated level has no imaging finding at that
          level; ``levels`` lists those levels (``;``-separated), else it is empty;
        * ``baseline_questionnaire``: no questionnaire of time point ``baseline`` for the
          operation (questionnaires are tied to their operation).

    Notes
    -----
    Three ``NOT EXISTS`` queries, each through the index on the child table's
    ``operation_id``: one pass over the operations each.  Follow-up time points are the
    follow-up worklists' (due dates, deaths), not this list's.
    """
    from django.db import connections

    where, params = _dataset_filter(dataset)
    base = ("SELECT d.name, o.hospital, o.department, o.operation_id, o.patient_id, CAST(o.date AS TEXT) "
            "FROM spinereg_operations o LEFT JOIN spinereg_dataset d ON d.id = o.dataset_id ")
    cond = "AND" if where else "WHERE"
    queries = {
        "treated_levels": f"{base} {where} {cond} o.procedure_category IN ({_CEMENT}) AND NOT EXISTS "
                          "(SELECT 1 FROM spinereg_treated_levels t WHERE t.operation_id = o.operation_id)",
        "baseline_questionnaire": f"{base} {where} {cond} NOT EXISTS (SELECT 1 FROM spinereg_proms q "
                                  "WHERE q.operation_id = o.operation_id AND q.timepoint = 'baseline')",
    }
    cols = ["dataset", "hospital", "department", "operation_id", "patient_id", "date"]
    parts = []
    with connections[alias].cursor() as cursor:
        for form, sql in queries.items():
            cursor.execute(sql, params)
            f = pd.DataFrame.from_records(cursor.fetchall(), columns=cols)
            parts.append(f.assign(form=form, levels=""))
        agg = "GROUP_CONCAT(t.level, ';')" if is_sqlite(alias) else "STRING_AGG(t.level, ';' ORDER BY t.level)"
        cursor.execute(
            f"SELECT d.name, o.hospital, o.department, o.operation_id, o.patient_id, CAST(o.date AS TEXT), {agg} "
            "FROM spinereg_treated_levels t JOIN spinereg_operations o ON o.operation_id = t.operation_id "
            f"LEFT JOIN spinereg_dataset d ON d.id = o.dataset_id {where} {cond} NOT EXISTS "
            "(SELECT 1 FROM spinereg_imaging_findings i WHERE i.operation_id = t.operation_id AND i.level = t.level) "
            "GROUP BY d.name, o.hospital, o.department, o.operation_id, o.patient_id, o.date", params)
        f = pd.DataFrame.from_records(cursor.fetchall(), columns=[*cols, "levels"])
        parts.append(f.assign(form="imaging_review"))
    out = pd.concat(parts, ignore_index=True)[[*cols, "form", "levels"]]
    out["date"] = pd.to_datetime(out["date"], format="%Y-%m-%d")
    out["levels"] = out["levels"].fillna("").astype(str)
    for c in ("dataset", "hospital", "department"):
        out[c] = out[c].astype("string")
    order = {f: i for i, f in enumerate(MISSING_FORMS)}
    out["_f"] = out["form"].map(order)
    out = out.sort_values(["dataset", "hospital", "date", "operation_id", "_f"], na_position="last",
                          ignore_index=True)
    return out.drop(columns="_f")


def _registry_rows(alias: str, name: str) -> pd.DataFrame:
    """One entity's rows as stored (raw values, dates as ISO text) plus ``dataset_id``."""
    from django.db import connections

    ent = next(e for e in entities() if e.name == name)
    sel = [f"CAST({c.name} AS TEXT)" if c.type == "date" else c.name for c in ent.columns]
    with connections[alias].cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(sel)}, dataset_id FROM {table_name(ent)}")
        rows = cursor.fetchall()
    return pd.DataFrame.from_records(rows, columns=[*ent.column_names, "dataset_id"])


_NUMBER_TYPES = {"int": "Float64", "float": "Float64", "bool": "boolean"}


def _typed(frame: pd.DataFrame, ent: Any) -> pd.DataFrame:
    """Numeric and boolean columns as nullable arrays when every stored value is one (the
    validator checks those without going through text: several times faster); a column
    holding anything else (a hand edit) stays as stored, for the validator to report."""
    out = {}
    for col in ent.columns:
        values = frame[col.name].to_numpy(dtype=object)
        typed = _as_array(values, _NUMBER_TYPES.get(col.type))
        out[col.name] = pd.Series(values if typed is None else typed, index=frame.index,
                                  dtype=object if typed is None else None)
    return pd.DataFrame(out, index=frame.index)


def _as_array(values: Any, dtype: str | None) -> Any:
    """``values`` as a nullable array of ``dtype``; None when there is none or a value does not fit."""
    if dtype is None:
        return None
    try:
        return pd.array(values, dtype=dtype)
    except (TypeError, ValueError):
        return None


def quality_problems(alias: str, *, dataset: str | None = None) -> pd.DataFrame:
    """The import validator run over the registry's own rows: every problem, per dataset and site.

    Parameters
    ----------
    alias : str
        Connection alias.
    dataset : str, optional
        Only problems of this dataset's rows (by name); the rules still see every row
        (a questionnaire of one dataset may refer to an operation of another).

    Returns
    -------
    DataFrame
        ``dataset, hospital, department, table, key, column, value, rule, severity,
        message``: ``table`` the entity, ``key`` the row's key (composite keys joined
        by ``/``), and ``column, value, rule, severity, message`` exactly as an import
        report gives them (:func:`spinereg.data.validate`).  The site is the row's
        operation's (``hospital``, ``department``); a patient's is that of the first of
        their operations (missing for a patient without one).

    Notes
    -----
    Reads every row once (one ``SELECT`` per entity) and validates them as one
    import would, vectorised; the rows are the stored values, unconverted, so a
    value the schema no longer accepts (a changed code list, a hand edit) is
    reported too.  Rows written through the write service already passed these
    rules when they were written; what this list finds are rows from before a rule,
    a date that has since become wrong, and the warnings (``window``, ``leak-type``)
    an import reports without refusing.  The extract date is today.
    """
    from spinereg.registry.models import Dataset

    names = dict(Dataset.objects.using(alias).values_list("pk", "name"))
    chunks = []
    frames: dict[str, pd.DataFrame] = {}
    for ent in entities():
        frame = _registry_rows(alias, ent.name)
        frames[ent.name] = frame
        if frame.empty:
            continue
        keys = frame[list(ent.key)].astype(str)
        raw = _typed(frame[list(ent.column_names)], ent)
        raw["_row"] = keys.iloc[:, 0] if len(ent.key) == 1 else keys.agg("/".join, axis=1)
        chunks.append(MappedTable(ent.name, raw, Provenance(ent.name, "key")))
    problems = validate(chunks)[1].problems
    cols = [*_SITE_COLUMNS, "table", "key", "column", "value", "rule", "severity", "message"]
    if problems.empty:
        return pd.DataFrame({c: pd.Series([], dtype="string") for c in cols})
    problems = problems.rename(columns={"entity": "table", "row": "key"})
    problems["key"] = problems["key"].astype(str)
    # each row's dataset and site
    ops = frames["operations"]
    site = pd.DataFrame({"operation_id": ops["operation_id"].astype(str), "hospital": ops["hospital"],
                         "department": ops["department"], "op_date": ops["date"].astype(str)})
    first_op = site.assign(patient_id=ops["patient_id"].astype(str)).sort_values(["op_date", "operation_id"])
    first_op = first_op.drop_duplicates("patient_id").set_index("patient_id")[["hospital", "department"]]
    site = site.set_index("operation_id")[["hospital", "department"]]
    lookups = []
    for ent in entities():
        f = frames[ent.name]
        if f.empty:
            continue
        k = f[list(ent.key)].astype(str)
        key = k.iloc[:, 0] if len(ent.key) == 1 else k.agg("/".join, axis=1)
        if ent.name == "patients":
            where = first_op.reindex(f["patient_id"].astype(str))
        else:
            where = site.reindex(f["operation_id"].astype(str))
        lookups.append(pd.DataFrame({"table": ent.name, "key": key.to_numpy(),
                                     "dataset": f["dataset_id"].map(names).to_numpy(dtype=object),
                                     "hospital": where["hospital"].to_numpy(dtype=object),
                                     "department": where["department"].to_numpy(dtype=object)}))
    lookup = pd.concat(lookups, ignore_index=True)
    out = problems.merge(lookup, on=["table", "key"], how="left")
    if dataset is not None:
        out = out[out["dataset"] == dataset]
    out = out[cols].astype({c: "string" for c in cols})
    order = {e.name: i for i, e in enumerate(entities())}
    out["_t"] = out["table"].map(order).astype(np.int64)
    return out.sort_values(["dataset", "hospital", "_t", "key", "column"], na_position="last",
                           ignore_index=True).drop(columns="_t")
