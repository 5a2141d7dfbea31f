from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import include, path

from spinereg.web import views

urlpatterns = [
    path("", views.home, name="home"),
    path("patients/<str:pseudonym>/", views.patient_detail, name="patient"),
    path("search/", views.patient_search, name="patient-search"),
    path("operations/", views.operation_list, name="operations"),
    path("accounts/login/", views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/totp/", views.totp_setup, name="totp-setup"),
    path("healthz", views.healthz, name="healthz"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("spinereg.web.studies_urls")),
    path("", include("spinereg.web.clinical_urls")),
    path("", include("spinereg.web.integrity_urls")),
    path("", include("spinereg.fhir_api.urls")),
    path("", include("spinereg.followup.urls")),
    path("", include("spinereg.followup.staff_urls")),
    path("", include("spinereg.web.users_urls")),
]
