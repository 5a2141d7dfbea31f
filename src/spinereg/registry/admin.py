"""Admin registration of every registry model (read-only audit)."""

from django.contrib import admin

from spinereg.registry.models import ENTITY_MODELS, AuditEntry, Dataset, ImportBatch

for _model in ENTITY_MODELS.values():
    admin.site.register(_model)
admin.site.register(Dataset)
admin.site.register(ImportBatch)


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ("at", "actor", "action", "entity", "record_key")
    readonly_fields = ("at", "actor", "action", "entity", "record_key", "changes", "batch")

    def has_add_permission(self, request: object) -> bool:
        return False

    def has_delete_permission(self, request: object, obj: object = None) -> bool:
        return False
