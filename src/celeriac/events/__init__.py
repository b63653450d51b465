"""Celery's monitoring events from celeriac workers (Flower, ``celery events``).

event.py       the event dicts with Celery's fields, and their messages
dispatcher.py  the worker's sender: heartbeats, task events batched per loop turn
receiver.py    ``celeriac events --dump``: subscribe and print
"""
