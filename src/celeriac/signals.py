"""Celery's signals (``celery.signals``), sent at the same moments, in the same process
and with the same sender and keyword arguments, so receivers written for Celery work.

Where each is sent (what Celery documents for each, and the module that sends it here):

- publishing (the client): ``before_task_publish`` (sender: task name; body, exchange,
  routing_key, headers, properties, declare, retry_policy) and ``after_task_publish``
  (sender: task name; body, exchange, routing_key, headers) — app.py.
- running a task, in the process and thread that runs it (a prefork child, a pool
  thread, the worker's loop, or ``apply()``): ``task_prerun`` (sender: task; task_id,
  task, args, kwargs), ``task_success`` (sender: task; result), ``task_failure``
  (sender: task; task_id, exception, args, kwargs, traceback, einfo), ``task_retry``
  (sender: task; request, reason, einfo), ``task_postrun`` (sender: task; task_id, task,
  args, kwargs, retval, state) — execution.py.
- receiving, in the worker's main process: ``task_received`` (sender: the consumer;
  request), ``task_unknown`` (name, id, message, exc), ``task_rejected`` (message, exc),
  ``task_revoked`` (request, terminated, signum, expired) — worker/executor.py.
- the worker's life, main process: ``celeryd_init`` (sender: hostname; instance, conf,
  options), ``worker_init``, ``import_modules`` (sender: app), ``celeryd_after_setup``
  (sender: hostname; instance, conf), ``worker_ready``, ``worker_shutting_down``
  (sender: hostname; sig, how, exitcode), ``worker_shutdown`` — worker/worker.py;
  prefork children: ``worker_process_init`` and ``worker_process_shutdown`` (pid,
  exitcode) — worker/pools/prefork.py.
- logging (the worker command): ``setup_logging`` (a receiver replaces celeriac's own
  set-up), ``after_setup_logger``, ``after_setup_task_logger`` — worker/banner.py.

A receiver that raises is logged with its traceback and the task or worker goes on.
``send`` of a signal nobody listens to costs one attribute test (``listened``).
"""

from __future__ import annotations

from typing import Any

from celeriac.utils.dispatch import Signal

before_task_publish = Signal("before_task_publish")
after_task_publish = Signal("after_task_publish")
task_received = Signal("task_received")
task_prerun = Signal("task_prerun")
task_postrun = Signal("task_postrun")
task_success = Signal("task_success")
task_retry = Signal("task_retry")
task_failure = Signal("task_failure")
task_internal_error = Signal("task_internal_error")
task_revoked = Signal("task_revoked")
task_rejected = Signal("task_rejected")
task_unknown = Signal("task_unknown")
celeryd_init = Signal("celeryd_init")
celeryd_after_setup = Signal("celeryd_after_setup")
import_modules = Signal("import_modules")
worker_init = Signal("worker_init")
worker_before_create_process = Signal("worker_before_create_process")
worker_process_init = Signal("worker_process_init")
worker_process_shutdown = Signal("worker_process_shutdown")
worker_ready = Signal("worker_ready")
worker_shutdown = Signal("worker_shutdown")
worker_shutting_down = Signal("worker_shutting_down")
heartbeat_sent = Signal("heartbeat_sent")
setup_logging = Signal("setup_logging")
after_setup_logger = Signal("after_setup_logger")
after_setup_task_logger = Signal("after_setup_task_logger")
beat_init = Signal("beat_init")
beat_embedded_init = Signal("beat_embedded_init")
eventlet_pool_started = Signal("eventlet_pool_started")
eventlet_pool_preshutdown = Signal("eventlet_pool_preshutdown")
eventlet_pool_postshutdown = Signal("eventlet_pool_postshutdown")
eventlet_pool_apply = Signal("eventlet_pool_apply")
user_preload_options = Signal("user_preload_options")


def listened(signal: Signal) -> bool:
    """Whether anything is connected (the hot paths test this before building kwargs)."""
    return bool(signal._receivers)


def send(signal: Signal, sender: Any, **named: Any) -> None:
    """``signal.send`` when someone listens; receivers' errors are logged, not raised."""
    if signal._receivers:
        signal.send(sender, **named)


__all__ = [
    "after_setup_logger", "after_setup_task_logger", "after_task_publish",
    "beat_embedded_init", "beat_init", "before_task_publish", "celeryd_after_setup",
    "celeryd_init", "eventlet_pool_apply", "eventlet_pool_postshutdown",
    "eventlet_pool_preshutdown", "eventlet_pool_started", "heartbeat_sent",
    "import_modules", "setup_logging", "task_failure", "task_internal_error",
    "task_postrun", "task_prerun", "task_received", "task_rejected", "task_retry",
    "task_revoked", "task_success", "task_unknown", "user_preload_options",
    "worker_before_create_process", "worker_init", "worker_process_init",
    "worker_process_shutdown", "worker_ready", "worker_shutdown", "worker_shutting_down",
]
