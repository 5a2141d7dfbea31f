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


def parse_cpr(values: Any, key: bytes | None = None) -> CprResult:
    """Validate CPR numbers; derive sex, birth date and (with ``key``) pseudonyms.

    Vectorised: the checks run as whole-column string and date operations;
    only the HMAC is computed per distinct valid number.

    Parameters
    ----------
    values : array_like of str
        CPR numbers ``DDMMYY-SSSS`` or ``DDMMYYSSSS``; empty/None is missing.
    key : bytes, optional
        Site key for the pseudonyms (see :func:`load_site_key`).
    """
    s = pd.Series(values, dtype="object").astype("string[pyarrow]").str.strip()
    n = len(s)
    missing = np.asarray((s.isna() | (s == "")).fillna(True), dtype=bool)
    form = np.asarray(s.str.fullmatch(r"[0-9]{6}-?[0-9]{4}").fillna(False), dtype=bool)
    digits = s.str.replace("-", "", regex=False).where(form, "0101000000")
    dd = digits.str.slice(0, 2)
    mm = digits.str.slice(2, 4)
    yy = digits.str.slice(4, 6).astype(int).to_numpy()
    d7 = digits.str.slice(6, 7).astype(int).to_numpy()
    last = digits.str.slice(9, 10).astype(int).to_numpy()
    century = np.select(
        [d7 <= 3, (d7 == 4) | (d7 == 9), yy <= 57],
        [np.full(n, 1900), np.where(yy <= 36, 2000, 1900), np.full(n, 2000)],
        default=1800,
    )
    year = pd.Series((century + yy).astype(str), index=s.index).astype("string[pyarrow]").str.zfill(4)
    iso = year + "-" + mm + "-" + dd
    birth_ts = pd.to_datetime(iso, format="%Y-%m-%d", errors="coerce")
    real_date = np.asarray(birth_ts.notna(), dtype=bool)
    valid = form & real_date & ~missing
    reason = np.full(n, "", dtype=object)
    reason[~missing & ~form] = "not a CPR number (DDMMYY-SSSS)"
    reason[~missing & form & ~real_date] = "CPR number's date part is not a valid date"
    sex = np.full(n, None, dtype=object)
    sex[valid] = np.where(last[valid] % 2 == 1, "male", "female")
    birth = np.where(valid, birth_ts.to_numpy(dtype="datetime64[s]"), np.datetime64("NaT", "s"))
    pseud = np.full(n, None, dtype=object)
    if key is not None and valid.any():
        vd = digits[valid].astype(object)
        uniq = pd.unique(vd.to_numpy(dtype=object))
        codes = {d: hmac.new(key, d.encode("ascii"), hashlib.sha256).hexdigest()[:32] for d in uniq}
        pseud[valid] = vd.map(codes).to_numpy(dtype=object)
    return CprResult(valid, missing, pseud, sex, birth.astype("datetime64[s]"), reason)


def pseudonymise_cpr(values: Any, key: bytes) -> CprResult:
    """Shorthand for :func:`parse_cpr` with a key (pseudonyms filled)."""
    return parse_cpr(values, key)
