"""Admin registration of every registry model, read-only: registry data changes only
through the audited write service (``RegistryWriter``, imports), never through the admin."""

from typing import Any

from django.contrib import admin

from spinereg.registry.models import ENTITY_MODELS, AuditEntry, Dataset, ImportBatch


class ReadOnlyAdmin(admin.ModelAdmin):
    """Lists and shows records; no add, change or delete."""

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False


for _model in (*ENTITY_MODELS.values(), Dataset, ImportBatch):
    admin.site.register(_model, ReadOnlyAdmin)


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ("at", "actor", "action", "entity", "record_key", "reason")
