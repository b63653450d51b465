"""Celery's testing helpers under celeriac's name (``celery.contrib.testing``).

- app.py: ``TestApp`` (an app on in-memory broker and results) and
  ``setup_default_app`` (current app restored afterwards, optionally the app trap);
- worker.py: ``start_worker`` (a real worker in a thread, with the ping check);
- tasks.py: the ``celery.ping`` shared task that check sends;
- mocks.py: ``TaskMessage``, ``task_message_from_sig``, ``ContextMock``.

The pytest fixtures built on them are in celeriac.contrib.pytest.
"""
