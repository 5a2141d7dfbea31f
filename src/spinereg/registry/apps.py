from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "spinereg.registry"
    label = "spinereg"
    verbose_name = "spinereg registry"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from spinereg.registry._guard import install_guard

        connection_created.connect(install_guard, dispatch_uid="spinereg-write-guard")
