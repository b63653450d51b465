"""Integrations with other frameworks (Celery's ``celery.contrib``)."""
