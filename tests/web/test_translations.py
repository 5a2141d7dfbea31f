"""Danish interface: every string the web package marks for translation has a Danish
translation in the compiled catalogue (``locale/da/LC_MESSAGES/django.mo``), and the catalogue
is compiled from ``django.po`` as it stands.

The strings are extracted as Django's ``makemessages`` does: templates through
``templatize``, then GNU ``xgettext`` with Django's keywords, over every template and module
of ``spinereg.web`` (and the follow-up app's, when present).
"""

from __future__ import annotations

import gettext
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import CI

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "src" / "spinereg" / "web"
APPS = [WEB, ROOT / "src" / "spinereg" / "followup"]
KEYWORDS = ["gettext_noop", "gettext_lazy", "ngettext_lazy:1,2", "pgettext:1c,2", "npgettext:1c,2,3",
            "pgettext_lazy:1c,2", "npgettext_lazy:1c,2,3", "_", "gettext", "ngettext:1,2"]


def _xgettext() -> str:
    tool = shutil.which("xgettext")
    if tool is None:
        if CI:
            pytest.fail("xgettext (Debian package gettext) is needed under CI=true")
        pytest.skip("xgettext (Debian package gettext) not found")
    return tool


def _msgids(tmp_path: Path) -> set[tuple[str | None, str, str | None]]:
    from django.utils.translation.template import templatize

    sources: list[Path] = []
    for app in APPS:
        if not app.is_dir():
            continue
        for path in sorted(app.rglob("*")):
            if path.suffix == ".py" and "migrations" not in path.parts:
                sources.append(path)
            elif path.suffix in (".html", ".txt") and "templates" in path.parts:
                out = tmp_path / (str(path.relative_to(ROOT)).replace("/", "__") + ".py")
                out.write_text(templatize(path.read_text(encoding="utf-8"), origin=str(path)), encoding="utf-8")
                sources.append(out)
    pot = tmp_path / "all.pot"
    cmd = [_xgettext(), "--language=Python", "--from-code=UTF-8", "--no-wrap", "--sort-output", "-o", str(pot),
           *(f"--keyword={k}" for k in KEYWORDS), *map(str, sources)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return _entries(pot.read_text(encoding="utf-8"))


def _entries(text: str) -> set[tuple[str | None, str, str | None]]:
    """(context, msgid, plural id or None) of every entry of a .po/.pot text."""
    ids: set[tuple[str | None, str, str | None]] = set()
    for block in text.split("\n\n"):
        fields: dict[str, list[str]] = {}
        key = None
        for line in block.splitlines():
            if line.startswith("#"):
                continue
            if line.startswith('"') and key is not None:
                fields[key].append(_unquote(line))
                continue
            head, _sp, rest = line.partition(" ")
            key = head
            fields[key] = [_unquote(rest)] if rest else []
        msgid = "".join(fields.get("msgid", []))
        if msgid:
            ctx = fields.get("msgctxt")
            plural = fields.get("msgid_plural")
            ids.add(("".join(ctx) if ctx is not None else None, msgid,
                     "".join(plural) if plural is not None else None))
    return ids


def _unquote(s: str) -> str:
    import ast

    return str(ast.literal_eval(s))


def test_every_marked_string_has_a_danish_translation(tmp_path: Path) -> None:
    ids = _msgids(tmp_path)
    assert len(ids) > 50  # the extraction found the interface (a broken extraction finds nothing)
    with (WEB / "locale" / "da" / "LC_MESSAGES" / "django.mo").open("rb") as fh:
        catalog = gettext.GNUTranslations(fh)
    missing = []
    for ctx, msgid, plural in sorted(ids, key=lambda t: (t[0] or "", t[1], t[2] or "")):
        if plural is not None:  # the plural form (the singular may read the same: "%(n)s patient")
            got = catalog.npgettext(ctx, msgid, plural, 2) if ctx else catalog.ngettext(msgid, plural, 2)
            untranslated = got == plural
        else:
            got = catalog.pgettext(ctx, msgid) if ctx else catalog.gettext(msgid)
            untranslated = got == msgid
        if untranslated and msgid not in SAME:  # a Danish word equal to the English one: listed in SAME
            missing.append(msgid)
    assert not missing, f"{len(missing)} strings without a Danish translation: {missing[:30]}"


#: strings that read the same in Danish
SAME = {"CSV", "TOTP", "OK", "ASA", "SINS", "Tokuhashi", "Tomita", "ICD-10", "Dansk", "English", "spinereg",
        "PDF", "HTML", "DOCX", "JSON", "CPR", "Clavien-Dindo", "Clavien–Dindo", "Status", "Problem", "Patient",
        "Hospital", "Type", "Version", "Operation", "Pseudonym", "%(s)s s", "Find", "Invitation",
        "Reference", "patient"}


def test_the_compiled_catalogue_is_current(tmp_path: Path) -> None:
    msgfmt = shutil.which("msgfmt")
    if msgfmt is None:
        if CI:
            pytest.fail("msgfmt (Debian package gettext) is needed under CI=true")
        pytest.skip("msgfmt (Debian package gettext) not found")
    po = WEB / "locale" / "da" / "LC_MESSAGES" / "django.po"
    fresh = tmp_path / "django.mo"
    subprocess.run([msgfmt, "--check", "-o", str(fresh), str(po)], check=True, capture_output=True, timeout=60)
    with fresh.open("rb") as a, (po.parent / "django.mo").open("rb") as b:
        assert dict(gettext.GNUTranslations(a)._catalog) == dict(gettext.GNUTranslations(b)._catalog), (  # type: ignore[attr-defined]
            "django.mo is out of date: msgfmt -o django.mo django.po")
