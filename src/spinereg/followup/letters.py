"""The text of an invitation (e-mail) and the printable letter (PDF) for patients without e-mail.

Neutral wording only: no name, no CPR number, no pseudonym, no diagnosis or
operation; the link, its last valid day and the invitation's short reference
(which the patient quotes when calling: it names the invitation and grants
nothing).  Staff print the letter and put it in an envelope addressed from their
own system (the registry stores no postal address).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

__all__ = ["invitation_text", "write_letter"]


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


def write_letter(path: Path, link: str, reference: str, expires: date, *, reminder: bool = False) -> None:
    """A one-page A4 PDF letter with the text of :func:`invitation_text` (written whole or not at all)."""
    import os

    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    subject, body = invitation_text(link, reference, expires, reminder=reminder)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pdf = canvas.Canvas(str(tmp), pagesize=A4, invariant=True)
    pdf.setTitle(subject)
    _width, height = A4
    y = height - 100
    pdf.setFont("Helvetica-Bold", 14)
    pdf.drawString(72, y, subject)
    y -= 32
    for line in body.splitlines():
        pdf.setFont("Courier" if line.startswith("http") else "Helvetica", 10 if line.startswith("http") else 11)
        pdf.drawString(72, y, line)
        y -= 16
    y -= 16
    pdf.setFont("Helvetica-Bold", 12)
    pdf.drawString(72, y, f"Reference: {reference}")
    pdf.showPage()
    pdf.save()
    os.replace(tmp, path)
