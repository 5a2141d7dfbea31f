"""Danish CPR numbers: validation, derived sex and birth date, keyed pseudonyms.

A CPR number is ``DDMMYY-SSSS`` (the dash optional).  The date part must be a
real calendar date; the century follows from the first digit of ``SSSS``
(CPR-kontoret's rules, in force since 1968):

=======  =====================  ===================
digit    YY 00-36               YY 37-57 / 58-99
=======  =====================  ===================
0-3      1900-1999              1900-1999
4, 9     2000-2036              1937-1999
5-8      2000-2057 (YY <= 57)   1858-1899 (YY >= 58)
=======  =====================  ===================

The last digit is odd for men and even for women.  The modulus-11 check is
*not* applied: CPR numbers without it have been issued since 2007.

Each valid CPR number is replaced by a keyed pseudonym, the first 32 hex
digits of HMAC-SHA256(site key, the 10 digits).  The site key lives outside
the database: the environment variable ``SPINEREG_SITE_KEY`` (64 hex digits)
or a key file (created on first use, mode 0600).  The same person gets the
same pseudonym on every import with the same key; without the key a pseudonym
cannot be reversed or recomputed.

A clear CPR number is never returned, logged or put in an error message by
this module: problems name the row and say "CPR number hidden".
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from spinereg._errors import SpineregError

__all__ = [
    "CPR_PATTERN",
    "CprResult",
    "default_key_path",
    "load_site_key",
    "parse_cpr",
    "pseudonymise_cpr",
]

# Anything that looks like a CPR number inside text (for leak scans).
CPR_PATTERN = re.compile(r"(?<![0-9])(?:0[1-9]|[12][0-9]|3[01])(?:0[1-9]|1[0-2])[0-9]{2}-?[0-9]{4}(?![0-9])")
_FULL = re.compile(r"^\s*([0-9]{6})-?([0-9]{4})\s*$")
HIDDEN = "[CPR number hidden]"


def default_key_path() -> Path:
    """``$SPINEREG_HOME/site.key``; ``SPINEREG_HOME`` defaults to ``~/.local/share/spinereg``."""
    home = os.environ.get("SPINEREG_HOME")
    base = Path(home) if home else Path.home() / ".local" / "share" / "spinereg"
    return base / "site.key"


def load_site_key(path: str | Path | None = None, *, create: bool = True) -> bytes:
    """The site's pseudonymisation key.

    ``SPINEREG_SITE_KEY`` (64 hex digits) wins; otherwise the key file
    ``path`` (default :func:`default_key_path`), created with 32 random bytes
    and permissions 0600 when absent and ``create`` is true.
    """
    env = os.environ.get("SPINEREG_SITE_KEY")
    if env:
        try:
            key = bytes.fromhex(env.strip())
        except ValueError:
            raise SpineregError("SPINEREG_SITE_KEY must be hexadecimal (64 hex digits)") from None
        if len(key) < 16:
            raise SpineregError("SPINEREG_SITE_KEY is too short: use 32 random bytes (64 hex digits)")
        return key
    p = Path(path) if path is not None else default_key_path()
    if not p.exists():
        if not create:
            raise SpineregError(f"no site key at {p}; set SPINEREG_SITE_KEY or create the key file")
        p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32) + "\n")
    mode = p.stat().st_mode & 0o777
    if mode & 0o077:
        raise SpineregError(f"site key file {p} is readable by others (mode {mode:o}); chmod 600 it")
    try:
        key = bytes.fromhex(p.read_text().strip())
    except ValueError:
        raise SpineregError(f"site key file {p} is not hexadecimal") from None
    if len(key) < 16:
        raise SpineregError(f"site key file {p} is too short")
    return key


@dataclass(frozen=True)
class CprResult:
    """Parsed CPR numbers (never holds the clear numbers).

    Attributes
    ----------
    valid : ndarray of bool
    missing : ndarray of bool
        Empty cells (not an error by themselves).
    pseudonym : ndarray of object
        32 hex digits for valid rows, None otherwise.
    sex : ndarray of object
        ``"male"``/``"female"`` for valid rows, None otherwise.
    birth_date : ndarray of datetime64[s]
        NaT for invalid rows.
    reason : ndarray of object
        Why a non-missing value is invalid ("" when valid or missing).
    """

    valid: npt.NDArray[np.bool_]
    missing: npt.NDArray[np.bool_]
    pseudonym: npt.NDArray[np.object_]
    sex: npt.NDArray[np.object_]
    birth_date: npt.NDArray[np.datetime64]
    reason: npt.NDArray[np.object_]


def _century(yy: int, digit: int) -> int | None:
    if digit <= 3:
        return 1900
    if digit in (4, 9):
        return 2000 if yy <= 36 else 1900
    return 2000 if yy <= 57 else 1800


def parse_cpr(values: Any, key: bytes | None = None) -> CprResult:
    """Validate CPR numbers; derive sex, birth date and (with ``key``) pseudonyms.

    Parameters
    ----------
    values : array_like of str
        CPR numbers ``DDMMYY-SSSS`` or ``DDMMYYSSSS``; empty/None is missing.
    key : bytes, optional
        Site key for the pseudonyms (see :func:`load_site_key`).
    """
    arr = pd.Series(values, dtype="object").to_numpy()
    n = len(arr)
    valid = np.zeros(n, dtype=bool)
    missing = np.zeros(n, dtype=bool)
    pseud = np.full(n, None, dtype=object)
    sex = np.full(n, None, dtype=object)
    birth = np.full(n, np.datetime64("NaT"), dtype="datetime64[s]")
    reason = np.full(n, "", dtype=object)
    cache: dict[str, tuple[str | None, str, np.datetime64, str]] = {}
    for i, v in enumerate(arr):
        if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) or str(v).strip() == "":
            missing[i] = True
            continue
        text = str(v)
        hit = cache.get(text)
        if hit is None:
            hit = _one(text, key)
            cache[text] = hit
        ps, sx, bd, why = hit
        if why:
            reason[i] = why
            continue
        valid[i] = True
        pseud[i] = ps
        sex[i] = sx
        birth[i] = bd
    return CprResult(valid, missing, pseud, sex, birth, reason)


def _one(text: str, key: bytes | None) -> tuple[str | None, str, np.datetime64, str]:
    nat = np.datetime64("NaT", "s")
    m = _FULL.match(text)
    if not m:
        return None, "", nat, "not a CPR number (DDMMYY-SSSS)"
    date_part, seq = m.group(1), m.group(2)
    dd, mm, yy = int(date_part[:2]), int(date_part[2:4]), int(date_part[4:])
    century = _century(yy, int(seq[0]))
    if century is None:  # pragma: no cover - every digit has a rule
        return None, "", nat, "CPR number has an unknown century digit"
    try:
        bd = np.datetime64(f"{century + yy:04d}-{mm:02d}-{dd:02d}", "s")
        if not (1 <= mm <= 12 and 1 <= dd <= 31):
            raise ValueError
    except ValueError:
        return None, "", nat, "CPR number's date part is not a valid date"
    sx = "male" if int(seq[-1]) % 2 else "female"
    digits = date_part + seq
    ps = hmac.new(key, digits.encode("ascii"), hashlib.sha256).hexdigest()[:32] if key is not None else None
    return ps, sx, bd, ""


def pseudonymise_cpr(values: Any, key: bytes) -> CprResult:
    """Shorthand for :func:`parse_cpr` with a key (pseudonyms filled)."""
    return parse_cpr(values, key)
