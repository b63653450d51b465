"""Celery's ``celery.worker.control`` path: ``Panel``, ``control_command`` and
``inspect_command`` for an application's own remote control commands (control/panel.py
says how they run), and ``ok``/``nok`` for their replies."""

from __future__ import annotations

from celeriac.control.panel import (
    CommandState,
    Panel,
    control_command,
    controller_info_t,
    inspect_command,
    nok,
    ok,
)

__all__ = ["CommandState", "Panel", "control_command", "controller_info_t",
           "inspect_command", "nok", "ok"]
