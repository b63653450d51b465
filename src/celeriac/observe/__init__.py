"""Looking at a fleet: queue statistics from the broker (queues.py), Prometheus metrics
(metrics.py, extra ``metrics``). Used by the worker's ``--metrics-port`` and by
``celeriac dashboard``."""
