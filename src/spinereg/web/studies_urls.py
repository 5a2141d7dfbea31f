"""URLs of studies from the web (capability ``run_studies``)."""

from __future__ import annotations

from django.urls import path

from spinereg.web import studies

urlpatterns = [
    path("studies/", studies.studies, name="studies"),
    path("studies/runs/<str:run_id>/", studies.study_run, name="study-run"),
    path("studies/runs/<str:run_id>/<str:filename>", studies.study_download, name="study-download"),
]
