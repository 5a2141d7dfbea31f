"""The text of an invitation (e-mail) and the printable letters (PDF) for patients without e-mail.

Neutral wording only: no name, no CPR number, no pseudonym, no diagnosis or
operation; the link, its last valid day and the invitation's short reference
(which the patient quotes when calling: it names the invitation and grants
nothing).  Staff print the letters and put each in an envelope addressed from
their own system (the registry stores no postal address).

Letters are written as one PDF file per run and kind (invitations, reminders),
one A4 page per letter, so staff print one file; :func:`write_letters` writes
the PDF itself (PDF 1.4, ISO 32000-1: the standard Type 1 fonts Helvetica,
Helvetica-Bold and Courier, which every reader has, so nothing is embedded):
about 20 microseconds a page, where a general PDF library took about 1 ms a
page (40 s for a national registry's first run; see docs/followup.md, "Speed").
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

__all__ = ["Letter", "invitation_text", "write_letter", "write_letters"]


def invitation_text(link: str, reference: str, expires: date, *, reminder: bool = False) -> tuple[str, str]:
    """Subject and body of an invitation or reminder."""
    subject = "Reminder: your health questionnaire" if reminder else "Your health questionnaire"
    lines = [
        "Hello,",
        "",
        ("We have not yet received your answers. " if reminder else "")
        + "You are invited to answer a short questionnaire about your health after your treatment.",
        "It takes about ten minutes. Open this personal link:",
        "",
        link,
        "",
        f"The link can be used once and works until {expires.isoformat()}.",
        f"If you have questions, contact the department that treated you and quote the reference {reference}.",
        "",
        "Thank you.",
    ]
    return subject, "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Letter:
    """One letter: the link, the invitation's reference, the link's last valid day, and whether it reminds."""

    link: str
    reference: str
    expires: date
    reminder: bool = False


_A4 = (595.2756, 841.8898)  # points (210 x 297 mm)
_FONTS = {"F1": "Helvetica", "F2": "Helvetica-Bold", "F3": "Courier"}


def _text(value: str) -> bytes:
    """A PDF literal string (WinAnsi text: the letter's text is ASCII; anything else is refused)."""
    raw = value.encode("ascii")  # links, references and the fixed wording are ASCII
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def _wrap(text: str, width: int) -> list[str]:
    """Greedy word wrap at spaces (words longer than ``width`` stay whole)."""
    lines: list[str] = []
    line = ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, line]


def _page(letter: Letter) -> bytes:
    """The content stream of one letter's page (the layout of the earlier one-letter PDF)."""
    subject, body = invitation_text(letter.link, letter.reference, letter.expires, reminder=letter.reminder)
    y = _A4[1] - 100
    ops = [b"BT /F2 14 Tf 72 %.2f Td " % y + _text(subject) + b" Tj ET"]
    y -= 32
    for paragraph in body.splitlines():
        link = paragraph.startswith("http")
        # Helvetica 11 pt averages about 5.5 pt a character: 80 fit between 72 pt margins; links are not wrapped
        for line in [paragraph] if link or not paragraph else _wrap(paragraph, 80):
            if line:
                ops.append(b"BT " + (b"/F3 10" if link else b"/F1 11") + b" Tf 72 %.2f Td " % y + _text(line)
                           + b" Tj ET")
            y -= 16
    y -= 16
    ops.append(b"BT /F2 12 Tf 72 %.2f Td " % y + _text(f"Reference: {letter.reference}") + b" Tj ET")
    return b"\n".join(ops)


def write_letters(path: Path, letters: Sequence[Letter], *, title: str = "Health questionnaire") -> None:
    """One PDF with a page per letter, written whole or not at all (a temporary file, then renamed).

    The same letters give the same bytes (no date or random id in the file)."""
    if not letters:
        raise ValueError("write_letters: no letters")
    n = len(letters)
    # objects: 1 catalog, 2 page tree, 3 info, 4-6 fonts, then (page, content) per letter
    first_page = 4 + len(_FONTS)
    kids = b" ".join(b"%d 0 R" % (first_page + 2 * i) for i in range(n))
    fonts = b" ".join(b"/%s %d 0 R" % (k.encode(), 4 + i) for i, k in enumerate(_FONTS))
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % n,
        b"<< /Title " + _text(title) + b" /Producer (spinereg) >>",
        *(b"<< /Type /Font /Subtype /Type1 /BaseFont /%s /Encoding /WinAnsiEncoding >>" % name.encode()
          for name in _FONTS.values()),
    ]
    for i, letter in enumerate(letters):
        stream = zlib.compress(_page(letter), 6)
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %.4f %.4f] /Resources << /Font << %s >> >> "
                       b"/Contents %d 0 R >>" % (_A4[0], _A4[1], fonts, first_page + 2 * i + 1))
        objects.append(b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 3 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(out)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_letter(path: Path, link: str, reference: str, expires: date, *, reminder: bool = False) -> None:
    """A one-page A4 PDF letter with the text of :func:`invitation_text` (written whole or not at all)."""
    subject, _ = invitation_text(link, reference, expires, reminder=reminder)
    write_letters(path, [Letter(link, reference, expires, reminder)], title=subject)
