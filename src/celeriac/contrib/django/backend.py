"""``result_backend = "django-db"``: results in the Django project's database.

Rows are ``celeriac.contrib.django.models.TaskResult`` (the app must be in
INSTALLED_APPS, its table made by ``migrate``). The ORM is synchronous, so each call
runs in a worker thread (``asyncio.to_thread``) with Django's connection handling: stale
connections are closed first, as Django does around a request. A stored SUCCESS is never
replaced; ``wait`` polls (backoff to 50 ms), like the SQLite backend.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Sequence
from typing import Any

from celeriac import states
from celeriac.backends.base import Meta, ResultBackend, decode_meta, encode_meta
from celeriac.backends.polling import poll_until_ready
from celeriac.serialization import json_dumps


def _model() -> Any:
    from django.db import close_old_connections

    from celeriac.contrib.django.models import TaskResult

    close_old_connections()
    return TaskResult


def _live(model: Any) -> Any:
    from django.db.models import Q

    return model.objects.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=time.time()))


class DjangoBackend(ResultBackend):
    """See the module docstring."""

    schemes = ("django-db",)
    pickles = False  # results stay JSON (text the ORM reads)

    async def store(self, task_id: str, meta: Meta, expires_s: float | None) -> None:
        encoded = encode_meta(meta)  # raises EncodeError here, before the thread hop
        await asyncio.to_thread(self._store, task_id, meta, encoded, expires_s)

    def _store(self, task_id: str, meta: Meta, encoded: bytes, expires_s: float | None
               ) -> None:
        from django.db import IntegrityError

        model = _model()
        done = meta.get("date_done")
        fields = {
            "status": meta.get("status"),
            "result": json_dumps(meta.get("result")).decode(),
            "traceback": meta.get("traceback"),
            "date_done": dt.datetime.fromisoformat(done) if isinstance(done, str) else None,
            "meta": encoded.decode(),
            "expires_at": None if expires_s is None else time.time() + expires_s,
        }
        for _ in range(2):  # a row made by a racing store in between: update it once
            rows = model.objects.filter(task_id=task_id).exclude(status=states.SUCCESS)
            if rows.update(**fields):
                return
            if model.objects.filter(task_id=task_id, status=states.SUCCESS).exists():
                return  # a stored SUCCESS is never replaced
            try:
                model.objects.create(task_id=task_id, **fields)
                return
            except IntegrityError:
                continue

    async def get(self, task_id: str) -> Meta | None:
        return await asyncio.to_thread(self._get, task_id)

    def _get(self, task_id: str) -> Meta | None:
        row = _live(_model()).filter(task_id=task_id).values_list("meta", flat=True).first()
        return None if row is None else decode_meta(row)

    async def get_many(self, task_ids: Sequence[str]) -> dict[str, Meta]:
        return await asyncio.to_thread(self._get_many, list(task_ids))

    def _get_many(self, task_ids: list[str]) -> dict[str, Meta]:
        rows = _live(_model()).filter(task_id__in=task_ids).values_list("task_id", "meta")
        return {task_id: decode_meta(meta) for task_id, meta in rows}

    async def wait(self, task_id: str, timeout_s: float | None) -> Meta | None:
        return await poll_until_ready(self.get, task_id, timeout_s)

    async def forget(self, task_id: str) -> None:
        await asyncio.to_thread(lambda: _model().objects.filter(task_id=task_id).delete())
