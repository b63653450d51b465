"""``TaskResult``: one row per task id, written by the ``django-db`` result backend.

``meta`` is Celery's whole result meta as JSON (status, result, traceback, children,
date_done, ...), the same document the other backends store; the columns beside it copy
what people filter on, so ``TaskResult.objects.filter(status="FAILURE")`` works.
"""

from __future__ import annotations

from django.db import models


class TaskResult(models.Model):  # type: ignore[misc]
    task_id = models.CharField(max_length=255, unique=True)
    status = models.CharField(max_length=50, db_index=True)
    #: the task's return value (or failure dict) as JSON text
    result = models.TextField(null=True)
    traceback = models.TextField(null=True)
    date_done = models.DateTimeField(null=True, db_index=True)
    #: Celery's whole meta document as JSON text
    meta = models.TextField()
    expires_at = models.FloatField(null=True)

    class Meta:
        verbose_name = "task result"

    def __str__(self) -> str:
        return f"<Task result: {self.task_id} {self.status}>"
