"""The one audited write service of the registry.

Every create, update and delete of registry data goes through here: imports
(:func:`spinereg.registry.import_extract`, in bulk), the command line, and the
web forms and API of later issues (:class:`RegistryWriter`, one record at a
time).  Each change gets one audit entry, in the same transaction, in one
format: who, when, entity, key, old -> new, why (``reason``) and the write
batch.  Writes that bypass the service are refused (:mod:`._guard`).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import math
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd

from spinereg._errors import IntegrityConflictError, PrivacyError, SiteKeyError, SpineregError
from spinereg.data import check_no_cpr, conform, entity
from spinereg.registry._audit import REGISTRY_COLUMNS, actor, changes_json, json_value
from spinereg.registry._checks import RecordProblem
from spinereg.registry._guard import writes_allowed
from spinereg.registry._locks import LockInfo, lock_state
from spinereg.registry._settings import translated_errors

__all__ = ["RegistryWriter", "check_site_key", "dataset_code", "key_fingerprint", "migrate", "schema_state"]

_FINGERPRINT = "site_key_fingerprint"


def key_fingerprint(key: bytes) -> str:
    """A pseudonymisation key's fingerprint: the first 16 hex digits of
    HMAC-SHA256(key, "spinereg site key fingerprint").  It tells keys apart without
    revealing them (it cannot recompute a pseudonym)."""
    return hmac.new(key, b"spinereg site key fingerprint", hashlib.sha256).hexdigest()[:16]


def stored_fingerprint(alias: str) -> str | None:
    """The fingerprint of the key the registry's rows were written with (None before the first)."""
    from spinereg.registry.models import RegistryInfo

    row = RegistryInfo.objects.using(alias).filter(name=_FINGERPRINT).first()
    return None if row is None else str(row.value)


def check_site_key(alias: str, fingerprint: str, *, record: bool = False) -> None:
    """Refuse another key than the registry's (:class:`SiteKeyError`); with ``record``,
    store the fingerprint on first use (inside the service's transaction)."""
    from spinereg.registry.models import RegistryInfo

    stored = stored_fingerprint(alias)
    if stored is None:
        if record:
            RegistryInfo.objects.using(alias).create(name=_FINGERPRINT, value=fingerprint)
        return
    if stored != fingerprint:
        raise SiteKeyError(
            f"this registry was written with the site key whose fingerprint is {stored}; the key given has "
            f"fingerprint {fingerprint}. Its pseudonyms would not match the registry's, and every patient would "
            "be created again. Use the registry's key: --key-file PATH or SPINEREG_SITE_KEY (see "
            "docs/pseudonymisation.md); nothing was written.")


def migrate(alias: str) -> None:
    """Create or upgrade the registry tables (Django migrations), through the service."""
    from django.core.management import call_command

    with writes_allowed(alias, atomic=False):
        call_command("migrate", "spinereg", database=alias, verbosity=0, interactive=False)
        call_command("migrate", database=alias, verbosity=0, interactive=False)


def schema_state(alias: str) -> str:
    """The registry's schema: ``"missing"`` (no registry tables), ``"outdated"``
    (migrations pending: run ``spinereg db migrate``) or ``"current"``."""
    from django.db import connections
    from django.db.migrations.executor import MigrationExecutor

    conn = connections[alias]
    if "spinereg_patients" not in conn.introspection.table_names():
        return "missing"
    executor = MigrationExecutor(conn)
    return "outdated" if executor.migration_plan(executor.loader.graph.leaf_nodes()) else "current"


def dataset_code(name: str) -> str:
    """The short code of a dataset name (its source ids are stored as ``code:id``):
    lower case, runs of other characters as one ``-``, at most 24 characters."""
    code = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:24].strip("-")
    if not code:
        raise SpineregError(f"dataset name {name!r}: give a name with letters or digits")
    return code


def get_or_create_dataset(alias: str, name: str, *, synthetic: bool = False, source: str = "",
                          extract_date: Any = None) -> Any:
    """The dataset called ``name`` (created when new; inside the service).  An existing
    dataset keeps its synthetic flag (it is never cleared) and gets the later extract date."""
    from spinereg.data import check_no_cpr
    from spinereg.registry.models import Dataset

    check_no_cpr(name, "dataset name")
    check_no_cpr(source, "dataset source")
    code = dataset_code(name)
    found = Dataset.objects.using(alias).filter(name=name).first()
    if found is None:
        clash = Dataset.objects.using(alias).filter(code=code).first()
        if clash is not None:
            raise IntegrityConflictError(f"dataset name {name!r} has the code {code!r} of the existing dataset "
                                         f"{clash.name!r}: choose a name that differs in letters or digits")
        from django.db import IntegrityError, transaction

        try:
            with transaction.atomic(using=alias):  # a savepoint: two first writers at once may race here
                return Dataset.objects.using(alias).create(name=name, code=code, synthetic=synthetic,
                                                           source=source, extract_date=extract_date)
        except IntegrityError:
            found = Dataset.objects.using(alias).filter(name=name).first()
            if found is None:  # the clash was not this name: the code check above lost a race
                raise
    changed = False
    if synthetic and not found.synthetic:
        found.synthetic, changed = True, True
    if extract_date is not None and (found.extract_date is None or extract_date > found.extract_date):
        found.extract_date, changed = extract_date, True
    if source and not found.source:
        found.source, changed = source, True
    if changed:
        found.save(using=alias)
    return found


class RegistryWriter:
    """Create, update and delete single records, audited (web forms, API, commands).

    Parameters
    ----------
    alias : str
        Connection alias from :func:`spinereg.registry.open_registry`.
    dataset : str
        Name of the dataset new records belong to (created when new).
    who : str, optional
        The actor recorded in the audit trail (default :func:`spinereg.registry.actor`).

    Every record is checked by the import's validator before anything is written
    (:meth:`check`: the same rules and messages as an import report; any error
    refuses it with :class:`~spinereg.registry.RecordValidationError`), so every text
    value is scanned for CPR numbers; a record of another dataset is never changed.
    A locked record (:meth:`lock`) changes only with a ``reason``.
    Each call is one transaction with one write batch (kind ``edit``) and
    one audit entry.
    """

    def __init__(self, alias: str, dataset: str, *, who: str | None = None) -> None:
        self.alias = alias
        self.dataset_name = dataset
        self.who = who

    # -- helpers ---------------------------------------------------------------------
    def _model(self, entity_name: str) -> Any:
        from spinereg.registry.models import ENTITY_MODELS

        try:
            return ENTITY_MODELS[entity_name]
        except KeyError:
            raise SpineregError(f"unknown entity {entity_name!r}; one of {', '.join(ENTITY_MODELS)}") from None

    def _clean(self, entity_name: str, values: Mapping[str, Any]) -> dict[str, Any]:
        """The values conformed to the schema (types, vocabularies) and scanned for CPR numbers."""
        from spinereg.data import contains_cpr

        ent = entity(entity_name)
        unknown = sorted(set(values) - set(ent.column_names))
        if unknown:
            raise SpineregError(f"{entity_name}: unknown field(s) {', '.join(unknown)}")
        for col, v in values.items():
            if isinstance(v, str) and contains_cpr(v):
                raise PrivacyError(f"{entity_name}, field {col!r}: the value holds a CPR number "
                                   "(value hidden); remove it")
        def given(v: Any) -> bool:
            return v is not None and v != "" and not (isinstance(v, float) and pd.isna(v))

        quick = _plain_values(ent, values)
        if quick is not None:
            return quick
        try:  # the whole record at once; a failure is looked for field by field below, for its message
            row = conform(pd.DataFrame({c: [v] for c, v in values.items()}), ent).iloc[0]
            if not any(given(v) and pd.isna(row[c]) for c, v in values.items()):
                return {c: json_value(row[c]) for c in values}
        except (ValueError, TypeError, OverflowError):
            pass
        out: dict[str, Any] = {}
        for col, v in values.items():
            column = ent.column(col)
            rule = f"not a valid {column.type}" + (f" (one of {', '.join(column.values)})" if column.values else "")
            try:
                got = conform(pd.DataFrame({col: [v]}), ent)[col].iloc[0]
            except (ValueError, TypeError, OverflowError):
                raise SpineregError(f"{entity_name}, field {col!r}: value {v!r} is {rule}") from None
            if given(v) and pd.isna(got):
                raise SpineregError(f"{entity_name}, field {col!r}: value {v!r} is {rule}")
            out[col] = json_value(got)
        return out

    def _key(self, entity_name: str, row: Mapping[str, Any]) -> str:
        ent = entity(entity_name)
        return "/".join(str(row[k]) for k in ent.key)

    @staticmethod
    def _key_fields(entity_name: str, key: str) -> dict[str, str] | None:
        """Key column -> value of a key (composite keys joined by ``/``); None when it has too few parts.
        A foreign key's attribute name equals its column name (patient_id, operation_id)."""
        names = entity(entity_name).key
        parts = key.split("/", len(names) - 1)
        return dict(zip(names, parts, strict=True)) if len(parts) == len(names) else None

    def _find(self, entity_name: str, key: str) -> Any:
        """The record with this key (composite keys joined by ``/``), or None."""
        model = self._model(entity_name)
        fields = self._key_fields(entity_name, key)
        return None if fields is None else model.objects.using(self.alias).filter(**fields).first()

    def _exists(self, entity_name: str, key: str) -> bool:
        """Whether a record with this key exists (plain SQL: every create asks)."""
        from django.db import connections

        model = self._model(entity_name)
        fields = self._key_fields(entity_name, key)
        if fields is None:
            return False
        conn = connections[self.alias]
        q = conn.ops.quote_name
        where = " AND ".join(f"{q(k)} = %s" for k in fields)
        with conn.cursor() as cur:
            cur.execute(f"SELECT 1 FROM {q(model._meta.db_table)} WHERE {where} LIMIT 1", list(fields.values()))
            return cur.fetchone() is not None

    def _get(self, entity_name: str, key: str) -> Any:
        obj = self._find(entity_name, key)
        if obj is None:
            raise IntegrityConflictError(f"{entity_name} {key!r} does not exist")
        return obj

    def _batch(self, dataset: Any, now: datetime, who: str) -> Any:
        from spinereg.registry.models import ImportBatch

        return ImportBatch.objects.using(self.alias).create(at=now, actor=who, kind="edit", dataset=dataset,
                                                             mapping="", files="")

    def _audit(self, action: str, entity_name: str, key: str, old: dict[str, Any] | None,
               new: dict[str, Any] | None, batch: Any, now: datetime, who: str, reason: str) -> None:
        from spinereg.registry.models import AuditEntry

        AuditEntry.objects.using(self.alias).create(at=now, actor=who, action=action, entity=entity_name,
                                                    record_key=key, changes=changes_json(old, new), batch=batch,
                                                    reason=reason)

    def _owned(self, obj: Any, dataset: Any, entity_name: str, key: str) -> None:
        if obj.dataset_id is not None and obj.dataset_id != dataset.pk:
            from spinereg.registry.models import Dataset

            other = Dataset.objects.using(self.alias).get(pk=obj.dataset_id)
            raise IntegrityConflictError(f"{entity_name} {key!r} belongs to dataset {other.name!r}; "
                                         f"it cannot be changed from dataset {self.dataset_name!r}")

    def _unknown(self, entity_name: str, values: Mapping[str, Any]) -> None:
        self._model(entity_name)
        unknown = sorted(set(values) - set(entity(entity_name).column_names))
        if unknown:
            raise SpineregError(f"{entity_name}: unknown field(s) {', '.join(unknown)}")

    def _row_key(self, entity_name: str, values: Mapping[str, Any]) -> str:
        from spinereg.registry._checks import raw_value

        return "/".join(str(raw_value(values.get(k))) for k in entity(entity_name).key)

    def _validated(self, entity_name: str, key: str, row: Mapping[str, Any], *, update: bool) -> None:
        """Refuse a record that breaks the import's rules (:class:`RecordValidationError`)."""
        from spinereg.registry._checks import RecordValidationError, problems_of

        errors = [p for p in problems_of(self.alias, entity_name, key, row, update=update) if p.severity == "error"]
        if errors:
            raise RecordValidationError(entity_name, key, errors)

    def _locked(self, what: str, entity_name: str, key: str, row: Mapping[str, Any] | None, reason: str) -> None:
        """Refuse a change to a record under a lock without a reason (:class:`RecordLockedError`)."""
        from spinereg.registry._locks import RecordLockedError, covering_locks

        if reason.strip():
            return
        locks = covering_locks(self.alias, entity_name, key, dict(row) if row is not None else None)
        if locks:
            raise RecordLockedError(what, locks[0])

    def check(self, entity_name: str, values: Mapping[str, Any], *, key: str | None = None) -> list[RecordProblem]:
        """The problems of a record by the import's rules, without writing anything.

        ``values`` are a new record's fields (``key`` None) or the changed fields of the
        record ``key`` (merged with its stored values).  Returns a list of
        :class:`spinereg.registry.RecordProblem` (entity, key, column, value, rule,
        severity, message), errors and warnings, empty when the record is fine: the
        rules and messages of an import report (:func:`spinereg.data.validate`)."""
        from spinereg.registry._audit import model_row

        self._unknown(entity_name, values)
        if key is None:
            return self._problems(entity_name, self._row_key(entity_name, values), values, update=False)
        obj = self._get(entity_name, key)
        row = {**model_row(obj), **values}
        return self._problems(entity_name, key, row, update=True)

    def _problems(self, entity_name: str, key: str, row: Mapping[str, Any], *, update: bool) -> list[RecordProblem]:
        from spinereg.registry._checks import problems_of

        return list(problems_of(self.alias, entity_name, key, row, update=update))

    # -- the writes ------------------------------------------------------------------
    def create(self, entity_name: str, values: Mapping[str, Any], *, reason: str = "") -> str:
        """Create one record; returns its key.  Its key must be new.

        The record is checked by the import's rules first (:meth:`check`); any error
        refuses it (:class:`spinereg.registry.RecordValidationError`).  A new treated
        level of a locked operation needs a ``reason``."""
        from spinereg.registry._audit import model_row

        model = self._model(entity_name)
        self._unknown(entity_name, values)
        check_no_cpr(reason, f"{entity_name}, reason")
        now, who = datetime.now(UTC), self.who or actor()
        with translated_errors(self.alias), writes_allowed(self.alias):
            given = self._row_key(entity_name, values)
            if self._exists(entity_name, given):
                raise IntegrityConflictError(f"{entity_name} {given!r} exists already")
            self._validated(entity_name, given, values, update=False)
            clean = self._clean(entity_name, values)
            key = self._key(entity_name, clean)
            if key != given and self._exists(entity_name, key):
                raise IntegrityConflictError(f"{entity_name} {key!r} exists already")
            self._locked(f"creating {entity_name} {key!r}", entity_name, key, clean, reason)
            dataset = get_or_create_dataset(self.alias, self.dataset_name)
            batch = self._batch(dataset, now, who)
            obj = model(**_fields(clean), dataset=dataset, batch=batch)
            obj.save(using=self.alias, force_insert=True)
            self._audit("create", entity_name, key, None, model_row(obj), batch, now, who, reason)
        return key

    def update(self, entity_name: str, key: str, values: Mapping[str, Any], *, reason: str = "") -> dict[str, Any]:
        """Change fields of one record; returns ``{"old": ..., "new": ...}`` of the changed fields.

        The whole record as it would be stored is checked by the import's rules, with the
        rows that refer to it (:meth:`check`); a record under a lock needs a ``reason``
        (:class:`spinereg.registry.RecordLockedError` without one)."""
        from spinereg.registry._audit import model_row

        ent = entity(entity_name)
        if set(values) & set(ent.key):
            raise SpineregError(f"{entity_name} {key!r}: the key cannot be changed")
        self._unknown(entity_name, values)
        check_no_cpr(reason, f"{entity_name} {key!r}, reason")
        now, who = datetime.now(UTC), self.who or actor()
        with translated_errors(self.alias), writes_allowed(self.alias):
            dataset = get_or_create_dataset(self.alias, self.dataset_name)
            obj = self._get(entity_name, key)
            self._owned(obj, dataset, entity_name, key)
            old = model_row(obj)
            self._validated(entity_name, key, {**old, **values}, update=True)
            clean = self._clean(entity_name, values)
            for field, v in _fields(clean).items():
                setattr(obj, field, v)
            new = model_row(obj)
            diff = [c for c in new if new[c] != old[c]]
            if not diff:
                return {"old": {}, "new": {}}
            self._locked(f"changing {entity_name} {key!r}", entity_name, key, old, reason)
            batch = self._batch(dataset, now, who)
            obj.batch = batch
            obj.save(using=self.alias)
            changes = {"old": {c: old[c] for c in diff}, "new": {c: new[c] for c in diff}}
            self._audit("update", entity_name, key, changes["old"], changes["new"], batch, now, who, reason)
        return changes

    def delete(self, entity_name: str, key: str, *, reason: str) -> None:
        """Delete one record (a reason is required)."""
        from django.db.models import ProtectedError

        from spinereg.registry._audit import model_row

        if not reason.strip():
            with translated_errors(self.alias):
                self._locked(f"deleting {entity_name} {key!r}", entity_name, key, None, reason)
            raise SpineregError(f"{entity_name} {key!r}: deleting a record requires a reason")
        check_no_cpr(reason, f"{entity_name} {key!r}, reason")
        now, who = datetime.now(UTC), self.who or actor()
        with translated_errors(self.alias), writes_allowed(self.alias):
            dataset = get_or_create_dataset(self.alias, self.dataset_name)
            obj = self._get(entity_name, key)
            self._owned(obj, dataset, entity_name, key)
            old = model_row(obj)
            batch = self._batch(dataset, now, who)
            try:
                obj.delete(using=self.alias)
            except ProtectedError:
                raise IntegrityConflictError(f"{entity_name} {key!r} has records that refer to it; "
                                             "delete those first") from None
            self._audit("delete", entity_name, key, old, None, batch, now, who, reason)
            if lock_state(self.alias, entity_name, key) is not None:  # a deleted record's lock ends with it
                self._audit("unlock", entity_name, key, None, None, batch, now, who, reason)

    # -- locking and e-signature ---------------------------------------------------------
    def lock(self, entity_name: str, key: str, *, who: str, signature_meaning: str) -> LockInfo:
        """Lock a completed record with an e-signature; returns the lock.

        ``who`` is the signer, already verified by the caller (the web registry asks for
        the password again); ``signature_meaning`` says what the signature means
        ("authored", "reviewed", "approved" ...).  One audit entry, action ``lock``,
        ``{"new": {"locked": true, "signed_by": who, "signature_meaning": ...}}``.  A lock
        on an operation covers its treated levels; see :mod:`spinereg.registry._locks`."""
        if not who.strip():
            raise SpineregError(f"{entity_name} {key!r}: a lock needs a signer")
        if not signature_meaning.strip():
            raise SpineregError(f"{entity_name} {key!r}: a lock needs the meaning of the signature")
        check_no_cpr(signature_meaning, f"{entity_name} {key!r}, signature meaning")
        now = datetime.now(UTC)
        with translated_errors(self.alias), writes_allowed(self.alias):
            dataset = get_or_create_dataset(self.alias, self.dataset_name)
            obj = self._get(entity_name, key)
            self._owned(obj, dataset, entity_name, key)
            current = lock_state(self.alias, entity_name, key)
            if current is not None:
                raise IntegrityConflictError(f"{current.describe()} already")
            batch = self._batch(dataset, now, who)
            self._audit("lock", entity_name, key, None, {"locked": True, "signed_by": who,
                                                         "signature_meaning": signature_meaning},
                        batch, now, who, "")
            got = lock_state(self.alias, entity_name, key)
        assert got is not None
        return got

    def unlock(self, entity_name: str, key: str, *, reason: str, who: str | None = None) -> None:
        """Unlock a locked record (a reason is required); one audit entry, action ``unlock``,
        ``{"old": {"locked": true, ...}}``, with the reason."""
        if not reason.strip():
            raise SpineregError(f"{entity_name} {key!r}: unlocking a record requires a reason")
        check_no_cpr(reason, f"{entity_name} {key!r}, reason")
        now, who = datetime.now(UTC), who or self.who or actor()
        with translated_errors(self.alias), writes_allowed(self.alias):
            dataset = get_or_create_dataset(self.alias, self.dataset_name)
            obj = self._get(entity_name, key)
            self._owned(obj, dataset, entity_name, key)
            current = lock_state(self.alias, entity_name, key)
            if current is None:
                raise IntegrityConflictError(f"{entity_name} {key!r} is not locked")
            batch = self._batch(dataset, now, who)
            self._audit("unlock", entity_name, key, {"locked": True, "signed_by": current.signed_by,
                                                     "signature_meaning": current.signature_meaning},
                        None, batch, now, who, reason)


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_PLAIN_INT = re.compile(r"-?[0-9]{1,15}")
_PLAIN_DECIMAL = re.compile(r"-?[0-9]{1,15}(\.[0-9]{1,6})?")


def _plain_value(col: Any, v: Any) -> tuple[bool, Any]:
    """(True, the value as :func:`spinereg.data.conform` then ``json_value`` give it) for a value
    already of its column's plain Python type; (False, None) for any other value."""
    if v is None:
        return True, None
    t = col.type
    if t in ("str", "codes") and isinstance(v, str):
        return True, v
    if t == "category" and isinstance(v, str) and v in col.values:
        return True, v
    if t == "int" and type(v) is int and abs(v) < 2 ** 53:
        return True, v
    if t == "int" and isinstance(v, str) and _PLAIN_INT.fullmatch(v):  # a form's text, as a file's cell
        return True, int(v)
    if t == "float" and type(v) in (int, float) and math.isfinite(v):
        return True, float(v)
    if t == "float" and isinstance(v, str) and _PLAIN_DECIMAL.fullmatch(v):
        return True, float(v)
    if t == "bool" and type(v) is bool:
        return True, v
    if t == "bool" and v in ("true", "false"):
        return True, v == "true"
    if t == "date":
        if type(v) is date:
            return True, v.isoformat()
        if isinstance(v, str) and _ISO_DATE.fullmatch(v):
            with contextlib.suppress(ValueError):
                return True, date.fromisoformat(v).isoformat()
    return False, None


def _plain_values(ent: Any, values: Mapping[str, Any]) -> dict[str, Any] | None:
    """A record's values conformed without pandas when each is of its column's plain type (what
    web forms and the API give); None when any is not (then :func:`spinereg.data.conform` does it).
    ``tests/registry/test_writer_fast.py`` checks both give the same."""
    out: dict[str, Any] = {}
    for c, v in values.items():
        ok, got = _plain_value(ent.column(c), v)
        if not ok:
            return None
        out[c] = got
    return out


def _fields(clean: Mapping[str, Any]) -> dict[str, Any]:
    """Model attribute names for tidy column values: a foreign key's attribute name equals
    its column name (``patient_id``), every other field is named as its column."""
    return {c: v for c, v in clean.items() if c not in REGISTRY_COLUMNS}


@contextlib.contextmanager
def service_transaction(alias: str) -> Iterator[None]:
    """One transaction of the write service, for a Django app that extends the registry with
    tables of its own (the follow-up app's invitations, consents...): inside it, the app may
    append entries to the registry's audit trail for its own changes, as the service does for
    registry records.  The audit trail stays append-only (its triggers refuse any change or
    deletion), and the registry's data tables are still written only by :class:`RegistryWriter`
    and the imports; whatever the caller writes inside must carry its audit entry."""
    with writes_allowed(alias):
        yield
