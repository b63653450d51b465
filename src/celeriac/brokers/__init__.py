"""Brokers by URL scheme. Each module's docstring states its URL forms and guarantees."""

from __future__ import annotations

import importlib
from typing import Any

from celeriac.brokers.base import Broker, DeadLetter, Delivery, mask_url
from celeriac.errors import ConfigurationError

#: scheme -> "module:Class"; modules are imported only when their scheme is used, so a
#: missing optional dependency (redis-py) only matters to those who use it.
BROKER_CLASSES = {
    "memory": "celeriac.brokers.memory:MemoryBroker",
    "sqlite": "celeriac.brokers.sqlite:SQLiteBroker",
    "redis": "celeriac.brokers.redis:RedisBroker",
    "rediss": "celeriac.brokers.redis:RedisBroker",
    "redis+socket": "celeriac.brokers.redis:RedisBroker",
    "sentinel": "celeriac.brokers.redis:RedisBroker",
    "amqp": "celeriac.brokers.amqp:AMQPBroker",
    "amqps": "celeriac.brokers.amqp:AMQPBroker",
    "pyamqp": "celeriac.brokers.amqp:AMQPBroker",
}

#: the install that brings a module's dependencies: redis-py is the ``redis`` extra;
#: aiormq comes with celeriac itself (missing only from a broken or partial install)
_INSTALLS = {
    "celeriac.brokers.redis": "celeriac[redis]",
    "celeriac.backends.redis": "celeriac[redis]",
    "celeriac.brokers.amqp": "celeriac",
    "celeriac.backends.rpc": "celeriac",
    "celeriac.backends.postgres": "celeriac[postgres]",
}


def load_class(table: dict[str, str], url: str, what: str) -> Any:
    """Import the class serving the URL's scheme, or say clearly what is wrong."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else url.lower()  # django-db
    target = table.get(scheme)
    if target is None:
        known = ", ".join(sorted(f"{s}://" for s in table))
        raise ConfigurationError(f"unknown {what} URL {mask_url(url)!r}; use one of: {known}")
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        install = _INSTALLS.get(module_name, "celeriac")
        raise ConfigurationError(
            f"{scheme}:// needs {exc.name or 'a module'}, which is not installed: "
            f'pip install "{install}"'
        ) from exc
    return getattr(module, class_name)


def create_broker(url: str, options: dict[str, Any] | None = None) -> Broker:
    """The broker for a URL, not yet connected."""
    cls = load_class(BROKER_CLASSES, url, "broker")
    broker: Broker = cls(url, options)
    return broker


__all__ = ["Broker", "DeadLetter", "Delivery", "create_broker", "mask_url"]
