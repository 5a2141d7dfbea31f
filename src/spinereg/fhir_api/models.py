"""API tokens: a bearer token acts as its user; only its SHA-256 hash is stored."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

__all__ = ["ApiToken", "hash_token"]

#: Tokens start with this, so that a leaked one is recognisable (secret scanners, logs).
PREFIX = "srg_"
#: ``last_used`` is written at most this often per token (no write on every request).
TOUCH_EVERY = timedelta(seconds=60)


def hash_token(token: str) -> str:
    """The stored form of a token: SHA-256 of its text, hex (a token has 256 random bits: no salt needed)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class ApiToken(models.Model):
    """A bearer token of the FHIR API.  The clear token is shown once, at creation."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    token_hash = models.CharField(max_length=64, unique=True)
    #: The first characters of the token (shown by ``spinereg token list`` to tell tokens apart).
    hint = models.CharField(max_length=12)
    label = models.CharField(max_length=100, blank=True, default="")
    created = models.DateTimeField(default=timezone.now)
    revoked = models.DateTimeField(null=True, blank=True)
    last_used = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("created", "id")

    def __str__(self) -> str:
        return f"{self.hint}... ({self.user_id})"

    @classmethod
    def issue(cls, user: Any, label: str = "") -> tuple[ApiToken, str]:
        """A new token for ``user``: the saved record and the clear token (not stored)."""
        token = PREFIX + secrets.token_urlsafe(32)
        record = cls.objects.create(user=user, token_hash=hash_token(token), hint=token[:10], label=label)
        return record, token

    @classmethod
    def lookup(cls, token: str) -> ApiToken | None:
        """The active token record of a clear token (None when unknown or revoked), its use recorded."""
        record: ApiToken | None = cls.objects.select_related("user", "user__staff", "user__staff__site").filter(
            token_hash=hash_token(token), revoked__isnull=True).first()
        if record is None:
            return None
        now = timezone.now()
        if record.last_used is None or now - record.last_used > TOUCH_EVERY:
            cls.objects.filter(pk=record.pk).update(last_used=now)
            record.last_used = now
        return record
