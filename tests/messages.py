"""A plain task message for broker-level tests (no app involved)."""

from __future__ import annotations

import uuid

from celeriac.protocol import Message


def task(queue: str, task_id: str | None = None) -> Message:
    """A ``t.noop`` call for ``queue``, with its own id unless one is given."""
    task_id = task_id or uuid.uuid4().hex
    return Message(headers={"id": task_id, "task": "t.noop", "lang": "py"},
                   body=b'[[], {}, {}]', properties={"correlation_id": task_id,
                                                      "delivery_mode": 2},
                   content_type="application/json", content_encoding="utf-8",
                   exchange="", routing_key=queue)
