"""Celery's monitoring events from celeriac workers (Flower, ``celery events``).

event.py       the event dicts with Celery's fields, and their messages
dispatcher.py  the worker's sender: heartbeats, task events batched per loop turn
receiver.py    subscribe to the event exchange, decode and localize events
dump.py        ``celeriac events --dump``: one line per event, as Celery prints them
state.py       the worker model and task states that view.py and the dashboard share
view.py        ``celeriac events``: the live view (workers, recent tasks)
sent.py        task-sent events from clients (task_send_sent_event)
"""
