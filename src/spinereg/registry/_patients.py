"""Patients by CPR number: register and find through the keyed pseudonym.

The clear CPR number lives only in the caller's memory for the length of the
call: it is validated and replaced by its keyed pseudonym (the first 32 hex
digits of HMAC-SHA256(site key, the ten digits); see docs/pseudonymisation.md),
and it is never stored, logged, returned or put in an error message (errors say
"CPR number hidden").  The site key must be the registry's (its fingerprint is
checked, and recorded on the first use), so the pseudonym matches the ones its
imports made.
"""

from __future__ import annotations

from spinereg._errors import SpineregError
from spinereg.data import HIDDEN, parse_cpr

__all__ = ["find_patient", "register_patient"]


def _pseudonym(cpr: object, key: bytes) -> tuple[str, str, str]:
    """The pseudonym, sex and birth date (ISO) of a CPR number; a clear error otherwise."""
    if not isinstance(cpr, str):
        raise SpineregError(f"the CPR number must be text, DDMMYY-SSSS ({HIDDEN})")
    res = parse_cpr([cpr], key)
    if bool(res.missing[0]):
        raise SpineregError("no CPR number given")
    if not bool(res.valid[0]):
        raise SpineregError(f"invalid CPR number ({HIDDEN}): {res.reason[0]}")
    birth = str(res.birth_date[0].astype("datetime64[D]"))
    return str(res.pseudonym[0]), str(res.sex[0]), birth


def register_patient(alias: str, cpr: str, *, dataset: str, key: bytes, who: str | None = None) -> str:
    """Register a patient by CPR number; returns the patient's pseudonym (``patient_id``).

    Parameters
    ----------
    alias : str
        Connection alias (:func:`spinereg.registry.open_registry`).
    cpr : str
        ``DDMMYY-SSSS`` or ``DDMMYYSSSS``: a real calendar date, its century from the
        first digit of ``SSSS`` (the modulus-11 check is not applied).
    dataset : str
        The dataset a new patient belongs to.
    key : bytes
        The site key (:func:`spinereg.data.load_site_key`); it must be the registry's
        (:class:`~spinereg.SiteKeyError` otherwise); a registry without a key yet
        records its fingerprint.
    who : str, optional
        The actor of the audit entry.

    Sex (odd last digit: male) and birth date are taken from the number.  A new patient
    is created through :class:`~spinereg.registry.RegistryWriter` (one audited
    ``create``), checked by the import's rules.  Idempotent: a patient who exists
    already (of any dataset) is left unchanged and its pseudonym returned.
    """
    from spinereg.registry._guard import writes_allowed
    from spinereg.registry._service import RegistryWriter, check_site_key, key_fingerprint
    from spinereg.registry._settings import translated_errors
    from spinereg.registry.models import Patient

    pid, sex, birth = _pseudonym(cpr, key)
    with translated_errors(alias), writes_allowed(alias):
        check_site_key(alias, key_fingerprint(key), record=True)
        if Patient.objects.using(alias).filter(patient_id=pid).exists():
            return pid
        RegistryWriter(alias, dataset, who=who).create("patients", {"patient_id": pid, "sex": sex,
                                                                    "birth_date": birth})
    return pid


def find_patient(alias: str, cpr: str, *, key: bytes) -> str | None:
    """The pseudonym of the registered patient with this CPR number, or None.

    Looks the keyed pseudonym up (the number itself is never searched for, nor kept).
    The key must be the registry's (:class:`~spinereg.SiteKeyError` otherwise: with
    another key nobody would ever be found)."""
    from spinereg.registry._service import check_site_key, key_fingerprint
    from spinereg.registry._settings import translated_errors
    from spinereg.registry.models import Patient

    pid = _pseudonym(cpr, key)[0]
    with translated_errors(alias):
        check_site_key(alias, key_fingerprint(key))
        return pid if Patient.objects.using(alias).filter(patient_id=pid).exists() else None
