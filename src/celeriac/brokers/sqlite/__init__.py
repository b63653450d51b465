"""The embedded SQLite broker: ``broker.py`` is the class, ``fanout.py`` its broadcast,
``files.py`` the store's file modes (see broker.py's docstring for guarantees)."""

from celeriac.brokers.sqlite.broker import SQLiteBroker, connect_sqlite, sqlite_path

__all__ = ["SQLiteBroker", "connect_sqlite", "sqlite_path"]
