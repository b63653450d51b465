"""The same tasks on celeriac (``celeriac -A celeriac_side worker``)."""

from __future__ import annotations

import os

from celeriac import Celery
from tests.interop.sides import register

app = Celery("celeriac_side", broker=os.environ.get("INTEROP_BROKER_URL"),
             backend=os.environ.get("INTEROP_BACKEND_URL"))
app.conf.broker_transport_options = {
    "visibility_timeout": float(os.environ.get("INTEROP_VISIBILITY_S", "3600")),
    "global_keyprefix": os.environ.get("INTEROP_KEYPREFIX", ""),  # Redis: per-test keys
}
# chain steps and callbacks sent from a worker go to the test's queue too
app.conf.task_default_queue = os.environ.get("INTEROP_QUEUE", "celery")
if os.environ.get("INTEROP_RESULT_SERIALIZER"):  # test_result_serializer.py (messages stay JSON)
    app.conf.result_serializer = os.environ["INTEROP_RESULT_SERIALIZER"]
register(app)
