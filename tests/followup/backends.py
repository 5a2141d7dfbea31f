"""E-mail backends for the delivery-failure tests."""

from __future__ import annotations

import smtplib
from collections.abc import Sequence
from typing import Any

from django.core.mail.backends.base import BaseEmailBackend


class RefusingBackend(BaseEmailBackend):  # type: ignore[misc]
    """Every message is refused, as an SMTP server refusing the recipient would (the address in the error)."""

    def send_messages(self, email_messages: Sequence[Any]) -> int:
        to = email_messages[0].to[0]
        raise smtplib.SMTPRecipientsRefused({to: (550, b"mailbox unavailable " + to.encode())})


class SilentBackend(BaseEmailBackend):  # type: ignore[misc]
    """Reports no message sent (and raises nothing)."""

    def send_messages(self, email_messages: Sequence[Any]) -> int:
        return 0
