"""The Redis result backend: ``backend.py`` is the class (Celery's key layout), ``batch.py``
batches result writes into one script call, ``wait.py`` waits for results in the caller's
thread (see backend.py's docstring for the URL forms)."""

from celeriac.backends.redis.backend import RedisBackend

__all__ = ["RedisBackend"]
