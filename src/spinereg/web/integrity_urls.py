"""URLs of the imaging review and record-integrity pages (included from :mod:`spinereg.web.urls`)."""

from __future__ import annotations

from django.urls import path

from spinereg.web import integrity, review

urlpatterns = [
    path("review/", review.review_queue, name="review-queue"),
    path("review/operations/<str:operation_id>/", review.review_form, name="review-form"),
    path("records/operations/<str:operation_id>/", integrity.record_status, name="record-status"),
    path("records/operations/<str:operation_id>/lock/", integrity.lock_record, name="record-lock"),
    path("records/operations/<str:operation_id>/unlock/", integrity.unlock_record, name="record-unlock"),
    path("audit/", integrity.audit_index, name="audit"),
    path("audit/operations/<str:operation_id>/", integrity.audit_operation, name="audit-operation"),
    path("audit/patients/<str:pseudonym>/", integrity.audit_patient, name="audit-patient"),
    path("audit/findings/<str:finding_id>/", integrity.audit_finding, name="audit-finding"),
    path("audit/complications/<str:complication_id>/", integrity.audit_complication, name="audit-complication"),
    path("audit/users/<str:username>/", integrity.audit_user, name="audit-user"),
    path("worklists/missing-forms/", integrity.worklist_missing, name="worklist-missing"),
    path("worklists/quality/", integrity.worklist_quality, name="worklist-quality"),
]
