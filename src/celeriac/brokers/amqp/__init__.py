"""The RabbitMQ (AMQP 0-9-1) broker: ``broker.py`` is the class, the other modules its parts
(see broker.py's docstring for the URL forms and guarantees).

``AMQPBroker`` is imported on first use, not here: ``backends/rpc.py`` imports this
package's parts and ``broker.py`` imports ``backends/rpc.py``, so an eager import here
would close that circle for whoever imports the rpc backend first."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celeriac.brokers.amqp.broker import AMQPBroker


def __getattr__(name: str) -> Any:
    if name == "AMQPBroker":
        from celeriac.brokers.amqp.broker import AMQPBroker
        return AMQPBroker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["AMQPBroker"]
