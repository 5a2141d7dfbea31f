"""The patient's questionnaire page (no login): include from the host project's URLconf."""

from __future__ import annotations

from django.urls import path

from spinereg.followup import views

urlpatterns = [
    path("q/<str:token>/", views.questionnaire, name="followup-questionnaire"),
]
