"""The RabbitMQ (AMQP 0-9-1) broker: ``broker.py`` is the class, the other modules its parts
(see broker.py's docstring for the URL forms and guarantees)."""

from celeriac.brokers.amqp.broker import AMQPBroker

__all__ = ["AMQPBroker"]
