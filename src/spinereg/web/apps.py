from __future__ import annotations

from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "spinereg.web"
    label = "spinereg_web"
    verbose_name = "spinereg web registry"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from spinereg.web import events

        events.connect()
