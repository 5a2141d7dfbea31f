from __future__ import annotations

from django.apps import AppConfig


class FhirApiConfig(AppConfig):
    name = "spinereg.fhir_api"
    label = "spinereg_fhir"
    verbose_name = "spinereg FHIR API"
    default_auto_field = "django.db.models.BigAutoField"
