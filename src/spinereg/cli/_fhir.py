"""FHIR commands: ``token create|revoke|list`` (bearer tokens of the ``/fhir/`` API), ``fhir export DIR``
(NDJSON bulk files), and :func:`import_fhir_files`, what ``spinereg import --mapping fhir`` runs.

Like the ``user`` commands, the token commands configure Django with the web settings in
their own process.  ``token create`` prints the clear token once, as the last
word of its output; only its SHA-256 hash is stored.

``import --mapping fhir`` reads the FHIR files (:func:`spinereg.fhir.read_bulk`: every resource
checked as the API checks it, CPR identifiers pseudonymised at once with the site key), writes the
rows as a tidy extract in a private temporary directory (pseudonyms only), and imports that through
the registry's import pipeline (:func:`spinereg.registry.import_files` with the ``tidy`` mapping):
the same validation, all or nothing, one audited batch.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from spinereg._errors import SpineregError
from spinereg.cli._web import DbOption, _user, _web

__all__ = ["import_fhir_files", "register"]

#: The dataset of ``import --mapping fhir`` when no ``--dataset`` is given.
FHIR_DATASET = "fhir import"


def _site_key(alias: str, key_file: str | Path | None) -> bytes:
    """The site key as the import pipeline takes it: SPINEREG_SITE_KEY or the key file; a new key only for a
    registry written with none."""
    from spinereg._errors import SiteKeyError
    from spinereg.data import default_key_path, load_site_key
    from spinereg.registry import registry_info

    path = Path(key_file) if key_file is not None else default_key_path()
    if os.environ.get("SPINEREG_SITE_KEY") or path.exists():
        return load_site_key(path, create=False)
    stored = registry_info(alias).key_fingerprint
    if stored is not None:
        raise SiteKeyError(f"no site key at {path}, and this registry was written with the key whose fingerprint "
                           f"is {stored}: give that key (--key-file PATH or SPINEREG_SITE_KEY). Nothing was written.")
    return load_site_key(path, create=True)


def _registry_lookups(alias: str) -> tuple[Any, Any]:
    from spinereg.registry.models import ENTITY_MODELS

    operations, patients = ENTITY_MODELS["operations"], ENTITY_MODELS["patients"]

    def ops(pid: str) -> list[tuple[str, date]]:
        return [(str(o), d) for o, d in operations.objects.using(alias).filter(patient_id=pid)
                .values_list("operation_id", "date") if d is not None]

    def known(pid: str) -> bool:
        return bool(patients.objects.using(alias).filter(patient_id=pid).exists())

    return ops, known


def import_fhir_files(alias: str | None, mapping: str | Path, files: Sequence[str | Path], *,
                      key_file: str | Path | None = None, dataset: dict[str, Any] | None = None,
                      **kw: Any) -> Any:
    """``spinereg import --mapping fhir``: FHIR Bundles / NDJSON through the registry's import pipeline.

    Same arguments and result as :func:`spinereg.registry.import_files` (``mapping`` is ``"fhir"``);
    :class:`spinereg.fhir.FhirBulkError` names every refused resource (file, line or entry, element, value)
    before anything is imported."""
    from spinereg.fhir import read_bulk
    from spinereg.registry import dataset_code, import_files

    name = (dataset or {}).get("name") or FHIR_DATASET
    ops: Any = None
    known: Any = None
    if alias is not None:
        key = _site_key(alias, key_file)
        ops, known = _registry_lookups(alias)
    else:  # a dry run without a registry (spinereg validate): the key file if there is one, else a throwaway key
        import secrets

        from spinereg.data import default_key_path, load_site_key

        path = Path(key_file) if key_file is not None else default_key_path()
        exists = bool(os.environ.get("SPINEREG_SITE_KEY")) or path.exists()
        key = load_site_key(path, create=False) if exists else secrets.token_bytes(32)
    rows = read_bulk(files, key=key, id_prefix=dataset_code(str(name)), registry_operations=ops,
                     registry_patient=known)
    with tempfile.TemporaryDirectory(prefix="spinereg-fhir-") as tmp:
        frames = rows.frames()
        written = [Path(tmp) / f"{entity_name}.csv" for entity_name in frames]
        for entity_name, frame in frames.items():
            frame.to_csv(Path(tmp) / f"{entity_name}.csv", index=False)
        return import_files(alias, "tidy", written, key=key, dataset={**(dataset or {}), "name": name,
                                                                      "source": "fhir"}, **kw)


def register(app: typer.Typer) -> None:
    """Add the ``token`` commands to ``app``."""
    from spinereg.cli._app import out

    token_app = typer.Typer(help="Manage bearer tokens of the FHIR API (/fhir/).", no_args_is_help=True)
    app.add_typer(token_app, name="token")
    fhir_app = typer.Typer(help="FHIR bulk files (import them with: spinereg import --mapping fhir FILES).",
                           no_args_is_help=True)
    app.add_typer(fhir_app, name="fhir")

    @fhir_app.command("export")
    def fhir_export(
        directory: Annotated[Path, typer.Argument(help="Output directory (created when missing).")],
        country_3l: Annotated[str, typer.Option("--country-3l", help="3L TTO value set of the index.")] = "Denmark",
        country_5l: Annotated[str, typer.Option("--country-5l", help="5L VT value set of the index.")] = "Denmark",
        db: DbOption = None,
    ) -> None:
        """Write the registry as FHIR NDJSON: Patient, Procedure, QuestionnaireResponse and Observation
        (<type>.ndjson, one resource a line, as Bulk Data export files). Patients carry pseudonyms only."""
        from spinereg.cli._registry import _open_existing
        from spinereg.fhir import export_resources, write_ndjson
        from spinereg.registry import load_extract

        alias = _open_existing(db)
        extract = load_extract(alias)
        counts: dict[str, int] = {}

        def counted() -> Any:
            for rtype, doc in export_resources(extract.tables, country_3l=country_3l, country_5l=country_5l):
                counts[rtype] = counts.get(rtype, 0) + 1
                yield rtype, doc

        paths = write_ndjson(directory, counted())
        for rtype, path in paths.items():
            out.print(f"{path}: {counts.get(rtype, 0):,} {rtype}", markup=False)

    @token_app.command("create")
    def token_create(
        name: Annotated[str, typer.Argument(help="The staff user the token acts as (its role and site).")],
        label: Annotated[str, typer.Option("--label", help="What the token is for (shown by token list).")] = "",
        db: DbOption = None,
    ) -> None:
        """Create a bearer token for USER; prints it once (the last word of the output)."""
        _web(db)
        from spinereg.fhir_api.models import ApiToken

        user = _user(name)
        if getattr(user, "staff", None) is None or not user.is_active:
            raise SpineregError(f"user {name!r} is not an active staff user: a token acts with a staff role")
        record, token = ApiToken.issue(user, label)
        out.print(f"token {record.pk} for {name} (role {user.staff.role}); it is shown only now: {token}",
                  markup=False)

    @token_app.command("revoke")
    def token_revoke(
        token_id: Annotated[int, typer.Argument(help="The token's number (spinereg token list).")],
        db: DbOption = None,
    ) -> None:
        """Revoke a token: it is refused from its next request."""
        _web(db)
        from django.utils import timezone

        from spinereg.fhir_api.models import ApiToken

        record = ApiToken.objects.filter(pk=token_id).first()
        if record is None:
            raise SpineregError(f"no token {token_id} (`spinereg token list` shows them)")
        if record.revoked is None:
            record.revoked = timezone.now()
            record.save(update_fields=["revoked"])
        out.print(f"token {token_id} revoked", markup=False)

    @token_app.command("list")
    def token_list(db: DbOption = None) -> None:
        """List the tokens: number, user, start of the token, label, created, last used, revoked."""
        from rich.table import Table

        _web(db)
        from spinereg.fhir_api.models import ApiToken

        def when(t: object) -> str:
            return t.strftime("%Y-%m-%d %H:%M") if t is not None else ""  # type: ignore[attr-defined]

        table = Table("id", "user", "token", "label", "created", "last used", "revoked")
        for r in ApiToken.objects.select_related("user").order_by("id"):
            table.add_row(str(r.pk), r.user.get_username(), r.hint + "...", r.label, when(r.created),
                          when(r.last_used), when(r.revoked))
        out.print(table)
