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

CPR numbers inside text
-----------------------
:func:`find_cpr` (a whole column at once), :func:`contains_cpr` and
:func:`redact_cpr` (one value) find CPR-shaped numbers anywhere in a text, so
that no free-text value (a department, a note, a form field) stores one in
clear.  A *CPR-shaped number* is

* six digits ``DDMMYY`` and four digits ``SSSS``, written together
  (``0202554322``), with a dash (``020255-4322``; en and em dashes count
  too), or with spaces, tabs or no-break spaces around or instead of the dash
  (``020255 4322``, ``020255 - 4322``);
* not part of a longer run of digits (``10202554322`` and
  ``020255-43221`` are not CPR-shaped), but letters around it do not hide it
  (``pt0202554322`` is);
* a real calendar date ``DDMMYY``, its century read from the first digit of
  ``SSSS`` as for a CPR number (so ``290200-4322``, 29 February 2000, counts,
  and ``290200-1322``, 29 February 1900, does not).  This filter is a choice:
  it drops about 60 % of random ten-digit numbers (phone numbers, lab ids)
  that could not be CPR numbers, and no real CPR number fails it.  The
  modulus-11 check is *not* applied (it is not required since 2007).
* One exception: ten digits without a separator that sit inside a run of at
  least 16 hexadecimal characters (``0-9a-f``) are part of a hexadecimal
  digest, such as spinereg's own keyed pseudonyms (32 hex digits) and
  ``hash`` ids, not a CPR number written by a person.  Without it, about one
  pseudonym in a thousand would look like it holds a CPR number.

:data:`CPR_PATTERN` is the broader pattern without the date and digest
filters (for leak scans of files and messages, where a false alarm is cheap).
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
import pyarrow as pa
import pyarrow.compute as pc

from spinereg._errors import PrivacyError, SpineregError

__all__ = [
    "CPR_PATTERN",
    "HIDDEN",
    "CprResult",
    "check_no_cpr",
    "contains_cpr",
    "default_key_path",
    "find_cpr",
    "load_site_key",
    "parse_cpr",
    "pseudonymise_cpr",
    "redact_cpr",
]

# The parts of a CPR-shaped number: DDMMYY, a separator (spaces, tabs, no-break
# spaces, one dash or en/em dash), SSSS.  Python ``re`` and RE2 (pyarrow) spellings.
_DDMMYY = r"(?:0[1-9]|[12][0-9]|3[01])(?:0[1-9]|1[0-2])[0-9]{2}"
_SEP_PY = "[ \t\u00a0]*[-\u2010-\u2015]?[ \t\u00a0]*"
_SEP_RE2 = r"[ \t\x{00A0}]*[-\x{2010}-\x{2015}]?[ \t\x{00A0}]*"
#: Anything shaped like a CPR number inside text, without the calendar and digest
#: filters of :func:`contains_cpr` (for leak scans, where a false alarm is cheap).
CPR_PATTERN = re.compile(rf"(?<![0-9])({_DDMMYY}){_SEP_PY}([0-9]{{4}})(?![0-9])")
# RE2 has no look-behind: the candidates of a column (a superset of CPR_PATTERN's hits)
_CANDIDATE_RE2 = rf"(?:^|[^0-9]){_DDMMYY}{_SEP_RE2}[0-9]{{4}}(?:[^0-9]|$)"
_HEX = frozenset("0123456789abcdefABCDEF")
_DIGEST_MIN = 16  # a run of this many hex characters is a digest (pseudonym, hash id)
_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
#: What a CPR number (or a CPR-shaped part of a text) is replaced with.
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


# =========================================================================== CPR numbers inside text


def _century(yy: int, d7: int) -> int:
    if d7 <= 3:
        return 1900
    if d7 in (4, 9):
        return 2000 if yy <= 36 else 1900
    return 2000 if yy <= 57 else 1800


def _real_date(ddmmyy: str, ssss: str) -> bool:
    """Whether DDMMYY is a calendar date, its century from SSSS (the CPR rules)."""
    dd, mm, yy = int(ddmmyy[:2]), int(ddmmyy[2:4]), int(ddmmyy[4:6])
    if dd > _DAYS[mm - 1]:
        return False
    if mm == 2 and dd == 29:
        year = _century(yy, int(ssss[0])) + yy
        return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    return True


def _in_digest(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] (ten digits) lies in a run of >= 16 hex characters."""
    lo, hi = start, end
    while lo > 0 and text[lo - 1] in _HEX:
        lo -= 1
    while hi < len(text) and text[hi] in _HEX:
        hi += 1
    return hi - lo >= _DIGEST_MIN


def _hits(text: str) -> list[tuple[int, int]]:
    """Start and end of every CPR-shaped number in ``text`` (see the module docstring)."""
    out: list[tuple[int, int]] = []
    for m in CPR_PATTERN.finditer(text):
        if not _real_date(m.group(1), m.group(2)):
            continue
        if m.end() - m.start() == 10 and _in_digest(text, m.start(), m.end()):
            continue
        out.append((m.start(), m.end()))
    return out


def contains_cpr(text: object) -> bool:
    """Whether a value holds a CPR-shaped number anywhere in it.

    ``"pt 020255-4322 called"``, ``"0202554322"`` and ``"020255 4322"`` do;
    ``"10202554322"`` (a longer digit run), ``"310299-4322"`` (no 31
    February) and a keyed pseudonym do not.  The rules are in the module
    docstring.  Missing values (None, NaN) hold none; other non-text values
    are read as their ``str()``.
    """
    if text is None or text is pd.NA or (isinstance(text, float) and text != text):
        return False
    return bool(_hits(text if isinstance(text, str) else str(text)))


def redact_cpr(text: str) -> str:
    """``text`` with every CPR-shaped number replaced by :data:`HIDDEN`.

    >>> redact_cpr("pt 020255-4322 called")
    'pt [CPR number hidden] called'
    """
    hits = _hits(text)
    if not hits:
        return text
    parts: list[str] = []
    pos = 0
    for start, end in hits:
        parts.append(text[pos:start])
        parts.append(HIDDEN)
        pos = end
    parts.append(text[pos:])
    return "".join(parts)


def check_no_cpr(text: object, where: str) -> None:
    """Raise :class:`~spinereg.PrivacyError` if ``text`` holds a CPR-shaped number.

    For writers of single values (web forms, the API, dataset names):
    ``where`` names the field; the message never shows the value.
    """
    if contains_cpr(text):
        raise PrivacyError(f"{where}: holds a CPR number ({HIDDEN}); a CPR number is never stored in clear")


def _text_array(values: Any) -> Any:
    """Values as a pyarrow ``large_string`` array (null = missing); non-text values as ``str()``."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        arr = values
    else:
        s = values if isinstance(values, pd.Series) else pd.Series(values, dtype="object")
        if isinstance(s.dtype, pd.StringDtype) and s.dtype.storage == "pyarrow":
            arr = pa.array(s.array)
            if isinstance(arr, pa.ChunkedArray):
                arr = arr.combine_chunks()
        else:
            obj = s.to_numpy(dtype=object)
            try:  # text and missing values only: no Python loop
                arr = pa.array(obj, pa.large_string(), from_pandas=True)
            except (pa.ArrowTypeError, pa.ArrowInvalid):
                miss = np.asarray(pd.isna(s), dtype=bool)
                txt = [None if m else (v if isinstance(v, str) else str(v)) for v, m in zip(obj, miss, strict=True)]
                arr = pa.array(txt, pa.large_string())
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = arr.cast(pa.large_string())
    return arr


def find_cpr(values: Any) -> npt.NDArray[np.bool_]:
    """Which values hold a CPR-shaped number (vectorised :func:`contains_cpr`).

    Parameters
    ----------
    values : pandas.Series, pyarrow array or array_like
        Text values; missing values give False, other values are read as
        their ``str()``.

    Returns
    -------
    ndarray of bool
        One flag per value, in order.

    Notes
    -----
    One RE2 pass over the whole column (pyarrow) picks the candidates, a
    superset of the hits; only the distinct candidate values are then checked
    in Python (calendar date, digest rule).  A column whose longest value has
    fewer than ten characters is skipped at once.
    """
    arr = _text_array(values)
    n = len(arr)
    out = np.zeros(n, dtype=bool)
    if n == 0 or arr.null_count == n:
        return out
    longest = pc.max(pc.utf8_length(arr)).as_py()
    if longest is None or longest < 10:
        return out
    cand = pc.fill_null(pc.match_substring_regex(arr, _CANDIDATE_RE2), False)
    idx = np.flatnonzero(np.asarray(cand.to_numpy(zero_copy_only=False), dtype=bool))
    if idx.size == 0:
        return out
    seen: dict[str, bool] = {}
    for i, v in zip(idx, arr.take(pa.array(idx)).to_pylist(), strict=True):
        hit = seen.get(v)
        if hit is None:
            hit = seen[v] = bool(_hits(v))
        out[i] = hit
    return out
