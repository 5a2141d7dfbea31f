"""URLs of the staff follow-up pages (:mod:`spinereg.followup.staff_views`); record parameters named as in
:data:`spinereg.web.permissions.URL_OBJECTS`.  Included by the web registry's URLconf."""

from __future__ import annotations

from django.urls import path

from spinereg.followup import staff_views

urlpatterns = [
    path("followup/worklist/", staff_views.worklist_page, name="followup-worklist"),
    path("followup/completeness/", staff_views.completeness_page, name="followup-completeness"),
    path("followup/patients/<str:pseudonym>/", staff_views.patient, name="followup-patient"),
    path("followup/patients/<str:pseudonym>/consent/", staff_views.consent, name="followup-consent"),
    path("followup/patients/<str:pseudonym>/contact/", staff_views.contact, name="followup-contact"),
    path("followup/operations/<str:operation_id>/paper/", staff_views.paper_entry, name="followup-paper"),
]
