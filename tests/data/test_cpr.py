"""CPR validation and keyed pseudonyms against hand-worked examples."""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from spinereg import SpineregError
from spinereg.data._cpr import CPR_PATTERN, load_site_key, parse_cpr

KEY = bytes(range(32))


def test_century_sex_and_birth_date() -> None:
    # (cpr, birth date, sex) worked out by hand from the CPR century table
    cases = [
        ("010203-1234", "1903-02-01", "female"),   # digit 1 -> 1900s; last digit 4 even
        ("0102031235", "1903-02-01", "male"),
        ("290200-4002", "2000-02-29", "female"),   # digit 4, YY 00 -> 2000 (leap year)
        ("150537-4001", "1937-05-15", "male"),     # digit 4, YY 37 -> 1937
        ("150557-5001", "2057-05-15", "male"),     # digit 5, YY 57 -> 2057
        ("150558-5001", "1858-05-15", "male"),     # digit 5, YY 58 -> 1858
        ("010199-9998", "1999-01-01", "female"),   # digit 9, YY 99 -> 1999
    ]
    r = parse_cpr([c for c, _, _ in cases], key=KEY)
    assert r.valid.all()
    assert [str(d)[:10] for d in r.birth_date] == [d for _, d, _ in cases]
    assert list(r.sex) == [s for _, _, s in cases]


def test_pseudonym_is_hmac_sha256_of_the_digits() -> None:
    r = parse_cpr(["010203-1234", "0102031234"], key=KEY)
    expected = hmac.new(KEY, b"0102031234", hashlib.sha256).hexdigest()[:32]
    assert list(r.pseudonym) == [expected, expected]
    other = parse_cpr(["010203-1234"], key=bytes(32)).pseudonym[0]
    assert other != expected


def test_invalid_and_missing() -> None:
    r = parse_cpr(["310299-4001", "320101-1234", "010203-123", "abc", None, "", "290201-4002"], key=KEY)
    assert not r.valid.any()
    assert list(r.missing) == [False, False, False, False, True, True, False]
    assert r.reason[0] == "CPR number's date part is not a valid date"
    assert r.reason[2] == "not a CPR number (DDMMYY-SSSS)"
    assert all("3102" not in str(x) for x in r.reason)
    assert np.isnat(r.birth_date).all()


def test_site_key_file_created_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPINEREG_SITE_KEY", raising=False)
    path = tmp_path / "keys" / "site.key"
    k1 = load_site_key(path)
    assert len(k1) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_site_key(path) == k1
    os.chmod(path, 0o644)
    with pytest.raises(SpineregError, match="readable by others"):
        load_site_key(path)
    monkeypatch.setenv("SPINEREG_SITE_KEY", KEY.hex())
    assert load_site_key(path) == KEY
    monkeypatch.setenv("SPINEREG_SITE_KEY", "zz")
    with pytest.raises(SpineregError, match="hexadecimal"):
        load_site_key(path)


def test_pattern_finds_cpr_like_text() -> None:
    assert CPR_PATTERN.search("patient 010203-1234 had")
    assert CPR_PATTERN.search("x0102031234y")  # letters around it do not hide it
    assert CPR_PATTERN.search("id 12345678901") is None
    assert CPR_PATTERN.search("2015-01-01") is None
