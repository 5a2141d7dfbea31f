"""Follow-up fixtures: the registry tests' databases (SQLite and a throwaway PostgreSQL)."""

from tests.registry.conftest import db_url, pg_cluster, registry

__all__ = ["db_url", "pg_cluster", "registry"]
