"""User management URLs (role admin; capability ``manage_users``)."""

from __future__ import annotations

from django.urls import path

from spinereg.web import users

urlpatterns = [
    path("users/", users.user_list, name="users"),
    path("users/add/", users.user_add, name="user-add"),
    path("users/<str:username>/", users.user_edit, name="user-edit"),
]
