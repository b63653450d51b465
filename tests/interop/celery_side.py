"""A real Celery 5 app with the interop tasks (``celery -A celery_side worker``)."""

from __future__ import annotations

import os

from celery import Celery

from tests.interop.sides import register

app = Celery("celery_side", broker=os.environ.get("INTEROP_BROKER_URL"),
             backend=os.environ.get("INTEROP_BACKEND_URL"))
app.conf.broker_transport_options = {
    "visibility_timeout": float(os.environ.get("INTEROP_VISIBILITY_S", "3600")),
    "global_keyprefix": os.environ.get("INTEROP_KEYPREFIX", ""),  # Redis: per-test keys
}
app.conf.task_acks_late = os.environ.get("INTEROP_CELERY_ACKS_LATE") == "1"
app.conf.worker_hijack_root_logger = True
# chain steps and callbacks sent from a worker go to the test's queue too
app.conf.task_default_queue = os.environ.get("INTEROP_QUEUE", "celery")
if os.environ.get("INTEROP_RESULT_SERIALIZER"):  # test_result_serializer.py (messages stay JSON)
    app.conf.result_serializer = os.environ["INTEROP_RESULT_SERIALIZER"]
register(app)
