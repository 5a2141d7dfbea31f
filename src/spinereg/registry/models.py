"""Registry models, built from the tidy schema (``spinereg/data/resources/schema.toml``).

One model per tidy entity; database column names equal the schema's column
names, so the tidy extract maps one-to-one onto the tables.  Entity keys are
the primary keys (text), except ``treated_levels`` whose key is
(operation_id, level).  Plus the registry's own tables: :class:`Dataset`
(with the ``synthetic`` flag), :class:`ImportBatch` and :class:`AuditEntry`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import models

from spinereg.data import Column, entities
from spinereg.registry._guard import check_allowed

__all__ = [
    "ENTITY_MODELS",
    "AuditEntry",
    "Complication",
    "Dataset",
    "ImagingFinding",
    "ImportBatch",
    "ImportSnapshot",
    "Operation",
    "Patient",
    "PromResponse",
    "RegistryInfo",
    "TreatedLevel",
]

class GuardedQuerySet(models.QuerySet):
    """A queryset whose bulk writes are refused outside the write service."""

    def update(self, **kwargs: Any) -> int:
        check_allowed(self.db, "QuerySet.update()")
        return int(super().update(**kwargs))

    def bulk_create(self, objs: Any, *args: Any, **kwargs: Any) -> Any:
        check_allowed(self.db, "QuerySet.bulk_create()")
        return super().bulk_create(objs, *args, **kwargs)

    def bulk_update(self, objs: Any, *args: Any, **kwargs: Any) -> Any:
        check_allowed(self.db, "QuerySet.bulk_update()")
        return super().bulk_update(objs, *args, **kwargs)

    def delete(self) -> Any:
        check_allowed(self.db, "QuerySet.delete()")
        return super().delete()

    def _raw_delete(self, using: Any) -> Any:
        check_allowed(using, "QuerySet._raw_delete()")
        return super()._raw_delete(using)


class EntityModel(models.Model):
    """Base of the entity models: ``save()`` and ``delete()`` only inside the service."""

    objects = GuardedQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        check_allowed(kwargs.get("using") or self._state.db, "Model.save()")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        check_allowed(kwargs.get("using") or self._state.db, "Model.delete()")
        return super().delete(*args, **kwargs)


_CLASS = {
    "patients": "Patient",
    "operations": "Operation",
    "treated_levels": "TreatedLevel",
    "proms": "PromResponse",
    "complications": "Complication",
    "imaging_findings": "ImagingFinding",
}
_PARENT = {"patients.patient_id": "Patient", "operations.operation_id": "Operation"}


# Foreign keys without an index of their own.  A questionnaire's patient_id repeats
# its operation's patient (validation checks that they agree): questionnaires are
# found through their operation (indexed), and an index on patient_id, in random
# order to the questionnaire keys, cost an import about a fifth of its insert time.
_UNINDEXED = {("proms", "patient_id")}


def _field(col: Column, primary: bool, entity_name: str) -> models.Field[Any, Any]:
    opts: dict[str, Any] = {"db_column": col.name, "help_text": col.description}
    if col.references:
        return models.ForeignKey(_PARENT[col.references], on_delete=models.PROTECT, db_column=col.name,
                                 related_name="+", help_text=col.description,
                                 db_index=(entity_name, col.name) not in _UNINDEXED)
    if primary:
        return models.CharField(max_length=64, primary_key=True, **opts)
    null = {"null": not col.required, "blank": not col.required}
    if col.type in ("str", "codes"):
        return models.CharField(max_length=255, **null, **opts)
    if col.type == "category":
        choices = [(v, v) for v in col.values]
        return models.CharField(max_length=32, choices=choices, **null, **opts)
    if col.type == "int":
        return models.IntegerField(**null, **opts)
    if col.type == "float":
        return models.FloatField(**null, **opts)
    if col.type == "date":
        return models.DateField(**null, **opts)
    return models.BooleanField(**null, **opts)


# Composite indexes for the web registry's list pages (keyset pagination, no OFFSET, no COUNT):
# a site's records are operations by hospital (and department).  A site's patients in
# pseudonym order: (hospital, patient_id, department), with department last so that a
# department's site filters it from the index alone and a hospital-wide site (blank
# department) reads the same range; a site's operations newest first: (hospital, date,
# operation_id, department); every operation newest first (national roles): (date, operation_id).
_INDEXES: dict[str, list[tuple[str, list[str]]]] = {
    "operations": [("operations_site_patient", ["hospital", "patient", "department"]),
                   ("operations_site_date", ["hospital", "date", "operation_id", "department"]),
                   ("operations_date", ["date", "operation_id"])],
}


def _build(entity_name: str) -> type[models.Model]:
    ent = next(e for e in entities() if e.name == entity_name)
    attrs: dict[str, Any] = {"__module__": __name__}
    single_key = ent.key[0] if len(ent.key) == 1 else None
    for col in ent.columns:
        name = col.name[:-3] if col.references and col.name.endswith("_id") else col.name
        attrs[name] = _field(col, primary=col.name == single_key, entity_name=entity_name)
    meta: dict[str, Any] = {"db_table": f"spinereg_{entity_name}", "verbose_name": entity_name.rstrip("s")}
    if single_key is None:
        key_fields = [k[:-3] if ent.column(k).references else k for k in ent.key]
        meta["constraints"] = [models.UniqueConstraint(fields=key_fields, name=f"{entity_name}_key")]
    if entity_name in _INDEXES:
        meta["indexes"] = [models.Index(fields=fields, name=name) for name, fields in _INDEXES[entity_name]]
    # the registry's own columns: which dataset a row belongs to, which write batch last wrote it
    attrs["dataset"] = models.ForeignKey("Dataset", on_delete=models.PROTECT, null=True, db_column="dataset_id",
                                         related_name="+", db_index=False,
                                         help_text="The dataset the row belongs to (registry column).")
    attrs["batch"] = models.ForeignKey("ImportBatch", on_delete=models.PROTECT, null=True, db_column="batch_id",
                                       related_name="+", db_index=False,
                                       help_text="The write batch that created or last changed the row "
                                                 "(registry column).")
    attrs["Meta"] = type("Meta", (), meta)
    attrs["__doc__"] = ent.description
    return type(_CLASS[entity_name], (EntityModel,), attrs)


Patient = _build("patients")
Operation = _build("operations")
TreatedLevel = _build("treated_levels")
PromResponse = _build("proms")
Complication = _build("complications")
ImagingFinding = _build("imaging_findings")

ENTITY_MODELS: dict[str, type[models.Model]] = {
    "patients": Patient,
    "operations": Operation,
    "treated_levels": TreatedLevel,
    "proms": PromResponse,
    "complications": Complication,
    "imaging_findings": ImagingFinding,
}


class Dataset(EntityModel):
    """A body of data in the registry, e.g. one synthetic registry or one site's import.

    ``code`` namespaces the dataset's source ids (``code:id``), so two hospitals'
    ``HOSP-001`` are two patients."""

    name = models.CharField(max_length=255, unique=True)
    code = models.CharField(max_length=40, unique=True, null=True,
                            help_text="Short slug of the name; prefix of the dataset's source ids.")
    synthetic = models.BooleanField(default=False, help_text="The data are synthetic (generated).")
    source = models.CharField(max_length=255, blank=True, default="")
    extract_date = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "spinereg_dataset"


class ImportBatch(EntityModel):
    """One write batch: an import (who, when, which files by name, which mapping), a
    synthetic registry, or one edit through the write service."""

    at = models.DateTimeField()
    actor = models.CharField(max_length=150)
    kind = models.CharField(max_length=16, default="import", help_text="import, synth or edit")
    dataset = models.ForeignKey(Dataset, null=True, on_delete=models.PROTECT, related_name="+",
                                db_column="dataset_id")
    mapping = models.CharField(max_length=255)
    files = models.TextField(help_text="File names, one per line.")
    n_created = models.IntegerField(default=0)
    n_updated = models.IntegerField(default=0)
    n_unchanged = models.IntegerField(default=0)

    class Meta:
        db_table = "spinereg_import_batch"


class ImportSnapshot(EntityModel):
    """The values of the rows an import created, once per import batch and entity: a
    zstd-compressed Arrow IPC stream of exactly the rows as stored (every tidy column).
    The import's ``create`` audit entries point here instead of each holding a copy."""

    batch = models.ForeignKey(ImportBatch, on_delete=models.PROTECT, related_name="+", db_column="batch_id")
    entity = models.CharField(max_length=32)
    n_rows = models.IntegerField()
    data = models.BinaryField(help_text="Arrow IPC stream (zstd), the created rows as stored.")

    class Meta:
        db_table = "spinereg_import_snapshot"
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(fields=["batch", "entity"], name="import_snapshot_key")]


class AuditEntry(EntityModel):
    """One create, update or delete of registry data (who, when, what, old -> new), or the
    lock (e-signature) or unlock of a record."""

    ACTIONS: ClassVar[list[tuple[str, str]]] = [("create", "create"), ("update", "update"), ("delete", "delete"),
                                                ("lock", "lock"), ("unlock", "unlock")]
    at = models.DateTimeField()  # entries are appended in time order: order by id (see docs/audit.md)
    actor = models.CharField(max_length=150)
    action = models.CharField(max_length=8, choices=ACTIONS)
    entity = models.CharField(max_length=32)
    record_key = models.CharField(max_length=160, db_index=True)
    changes = models.TextField(help_text='JSON: {"new": {...}} (create), {"snapshot": batch id} (create by an '
                                         'import: the values are in its ImportSnapshot), {"old": {...}, '
                                         '"new": {...}} (update, changed columns), {"old": {...}} (delete)')
    batch = models.ForeignKey(ImportBatch, null=True, blank=True, on_delete=models.PROTECT,
                              related_name="+", db_column="batch_id", db_index=False)
    reason = models.TextField(blank=True, default="", help_text="Why (required for changes to locked records).")

    class Meta:
        db_table = "spinereg_audit"


class RegistryInfo(EntityModel):
    """Facts about the registry itself, one row each: ``site_key_fingerprint`` (the
    fingerprint of the pseudonymisation key its rows were written with)."""

    name = models.CharField(max_length=64, primary_key=True)
    value = models.CharField(max_length=255)

    class Meta:
        db_table = "spinereg_registry_info"
