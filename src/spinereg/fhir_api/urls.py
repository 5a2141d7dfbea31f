from __future__ import annotations

from django.urls import path

from spinereg.fhir_api import views

urlpatterns = [
    path("fhir/metadata", views.metadata, name="fhir-metadata"),
    path("fhir/Questionnaire", views.questionnaire_type, name="fhir-questionnaire-type"),
    path("fhir/Questionnaire/<str:resource_id>", views.questionnaire_read, name="fhir-questionnaire"),
    path("fhir/Patient", views.patient_type, name="fhir-patient-type"),
    path("fhir/Patient/<str:resource_id>", views.patient_read, name="fhir-patient"),
    path("fhir/Procedure", views.procedure_type, name="fhir-procedure-type"),
    path("fhir/Procedure/<str:resource_id>", views.procedure_read, name="fhir-procedure"),
    path("fhir/Observation", views.observation_type, name="fhir-observation-type"),
    path("fhir/Observation/<str:resource_id>", views.observation_read, name="fhir-observation"),
    path("fhir/QuestionnaireResponse", views.response_type, name="fhir-response-type"),
    path("fhir/QuestionnaireResponse/<str:resource_id>", views.response_read, name="fhir-response"),
]
