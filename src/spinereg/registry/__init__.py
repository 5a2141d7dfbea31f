"""The registry: Django models, migrations and the store of the tidy data.

Importing this package does not configure Django; :func:`open_registry`
does, on first use.  The study engine never imports this package.
"""

from spinereg.registry._settings import default_database_url, open_registry, resolve_database_url

__all__ = ["default_database_url", "open_registry", "resolve_database_url"]
