"""The Redis broker: ``broker.py`` is the class, the other modules its parts, ``lua/`` the
server-side scripts (see broker.py's docstring for the URL forms and guarantees)."""

from celeriac.brokers.redis.broker import RedisBroker

__all__ = ["RedisBroker"]
