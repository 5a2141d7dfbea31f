"""URLs of the clinical pages (:mod:`spinereg.web.clinical`); record parameters named as in
:data:`spinereg.web.permissions.URL_OBJECTS`."""

from __future__ import annotations

from django.urls import path

from spinereg.web import clinical

urlpatterns = [
    path("clinical/register/", clinical.register, name="patient-register"),
    path("clinical/find/", clinical.find, name="patient-find"),
    path("clinical/patients/<str:pseudonym>/", clinical.patient_found, name="clinical-patient"),
    path("clinical/patients/<str:pseudonym>/death/", clinical.death, name="clinical-death"),
    path("clinical/patients/<str:pseudonym>/operations/new/", clinical.operation_new, name="operation-new"),
    path("operations/<str:operation_id>/", clinical.operation_detail, name="operation"),
    path("operations/<str:operation_id>/edit/", clinical.operation_edit, name="operation-edit"),
    path("operations/<str:operation_id>/complications/new/", clinical.complication_new, name="complication-new"),
    path("complications/<str:complication_id>/edit/", clinical.complication_edit, name="complication-edit"),
]
