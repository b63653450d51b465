"""celeriac inside a Django project, as Celery's "First steps with Django" sets it up.

- ``fixup.py``: installed on every app when ``DJANGO_SETTINGS_MODULE`` is set and Django
  is importable (as Celery's Django fix-up): ``django.setup()`` before task modules are
  imported, ``autodiscover_tasks()`` with no arguments reads INSTALLED_APPS, and stale
  database connections are closed around each task.
- ``backend.py``: ``result_backend = "django-db"``: results in the Django database, in
  this package's model ``TaskResult`` (add ``"celeriac.contrib.django"`` to
  INSTALLED_APPS and run ``migrate``), readable with the ORM; no other package.
- ``Task.delay_on_commit`` / ``apply_async_on_commit`` (celeriac/task.py) send once the
  current transaction commits, through ``django.db.transaction.on_commit``.
"""
