"""The outbox e-mail backend: one ``.eml`` file per message, for the embedded set-up and tests.

Django's own file backend appends every message of a connection to one log file;
this one writes each message to its own file, named by the message's
``X-Spinereg-Reference`` header (the invitation's short reference and the kind of
message: no personal data), written to a temporary name and renamed, so a file in
the outbox is always a whole message.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from django.core.mail.backends.base import BaseEmailBackend

__all__ = ["OutboxBackend"]


class OutboxBackend(BaseEmailBackend):  # type: ignore[misc]
    """Write each message to ``folder/<reference>.eml``."""

    def __init__(self, folder: str | os.PathLike[str] | None = None, fail_silently: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(fail_silently=fail_silently, **kwargs)
        if folder is None:
            raise ValueError("OutboxBackend needs a folder")
        self.folder = Path(folder)

    def send_messages(self, email_messages: Sequence[Any]) -> int:
        self.folder.mkdir(parents=True, exist_ok=True)
        sent = 0
        for message in email_messages:
            name = str(message.extra_headers.get("X-Spinereg-Reference") or secrets.token_hex(8))
            name = "".join(c for c in name if c.isalnum() or c in "-_") or secrets.token_hex(8)
            target = self.folder / f"{name}.eml"
            tmp = self.folder / f".{name}.{secrets.token_hex(4)}.tmp"
            tmp.write_bytes(message.message().as_bytes(linesep="\n"))
            os.replace(tmp, target)
            sent += 1
        return sent
