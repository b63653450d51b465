"""Celery's ``celery.app.control`` path: ``Control`` (``app.control``), ``Inspect``
(``app.control.inspect()``) and ``flatten_reply``. They live in control/client.py."""

from __future__ import annotations

from celeriac.control.client import Control, Inspect, flatten_reply

__all__ = ["Control", "Inspect", "flatten_reply"]
