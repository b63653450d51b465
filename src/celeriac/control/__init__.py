"""Remote control (kombu's pidbox) and durable revokes for celeriac workers.

wire.py      requests and replies as kombu's pidbox sends them; names; Lamport clock
revoked.py   revoked ids kept in the broker for a bounded time, loaded by every worker
state.py     what commands see of the worker
info.py      Celery's reply shapes (request info, stats, queues, conf)
commands.py  the commands (ping, stats, active, revoke, rate_limit, shutdown, ...)
node.py      the worker's mailbox: subscription, dispatch, replies
service.py   start and stop all of it with the worker
client.py    ``app.control``: inspect, ping, revoke, broadcast ... (client side)
"""
