"""The Django app that holds the ``django-db`` result model."""

from __future__ import annotations

from django.apps import AppConfig


class CeleriacConfig(AppConfig):  # type: ignore[misc]
    name = "celeriac.contrib.django"
    label = "celeriac"
    verbose_name = "celeriac task results"
    default_auto_field = "django.db.models.BigAutoField"
