"""Django settings for the registry when no host project configures Django.

The command line and the Python API use the registry standalone: the first
:func:`spinereg.registry.open_registry` calls :func:`configure` with the
registry's database, and this module is the only place where spinereg
configures Django.  A host project (the web registry) instead lists
``"spinereg.registry"`` in its own ``INSTALLED_APPS`` and keeps its settings.
"""

from __future__ import annotations

from typing import Any

__all__ = ["configure", "configured_here"]

_CONFIGURED = False


def configured_here() -> bool:
    """Whether Django was configured by this module (standalone), not by a host project."""
    return _CONFIGURED


def configure(default_database: dict[str, Any]) -> None:
    """Configure Django once for standalone use, with ``default_database`` as ``default``."""
    global _CONFIGURED
    import django
    from django.conf import settings

    if settings.configured:
        return
    settings.configure(
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "spinereg.registry",
            "spinereg.followup",
        ],
        DATABASES={"default": default_database},
        USE_TZ=True,
        TIME_ZONE="UTC",
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        LOGGING_CONFIG=None,
    )
    _CONFIGURED = True
    django.setup()
