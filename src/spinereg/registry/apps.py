from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "spinereg.registry"
    label = "spinereg"
    verbose_name = "spinereg registry"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from spinereg.registry import _audit

        _audit.connect_signals()
