# mypy: disallow-subclassing-any=False
from django.apps import AppConfig


class FollowupConfig(AppConfig):
    name = "spinereg.followup"
    label = "spinereg_followup"
    verbose_name = "spinereg follow-up"
    default_auto_field = "django.db.models.BigAutoField"
