"""Mocks for unit tests (Celery's ``celery.contrib.testing.mocks``).

``TaskMessage`` is a Mock shaped like a received protocol 2 task message: ``headers``
(``id``, ``task``, ``shadow`` and any other header given), ``body`` with its
``content_type`` and ``content_encoding`` (JSON, as celeriac encodes it) and the decoded
``payload`` ``(args, kwargs, embed)``. Protocol 1 (Celery's ``TaskMessage1``) is not
provided: celeriac speaks protocol 2 only.
"""

from __future__ import annotations

import datetime as dt
import numbers
from collections.abc import Mapping, Sequence
from typing import Any
from unittest.mock import MagicMock, Mock

from celeriac.app import Celery
from celeriac.protocol import new_id
from celeriac.serialization import dumps


def TaskMessage(name: str, id: str | None = None, args: Sequence[Any] = (),
                kwargs: Mapping[str, Any] | None = None,
                callbacks: Sequence[Any] | None = None,
                errbacks: Sequence[Any] | None = None, chain: Sequence[Any] | None = None,
                shadow: str | None = None, utc: bool | None = None,
                **options: Any) -> Any:
    """A Mock task message in protocol 2 format (``options``: further headers)."""
    task_id = id or new_id()
    message = Mock(name=f"TaskMessage-{task_id}")
    message.headers = {"id": task_id, "task": name, "shadow": shadow, **options}
    embed = {"callbacks": callbacks, "errbacks": errbacks, "chain": chain}
    payload = (args, dict(kwargs or {}), embed)
    message.content_type, message.content_encoding, message.body = dumps(payload, "json")
    message.payload = payload
    return message


def task_message_from_sig(app: Celery, sig: Any, utc: bool = True,
                          TaskMessage: Any = TaskMessage) -> Any:
    """The TaskMessage a signature would be sent as (``add.s(2, 2)``): its id fixed,
    ``link``/``link_error`` as callbacks/errbacks, countdown and expiry as ISO times."""
    sig.freeze()
    options = sig.options
    callbacks = options.pop("link", None)
    errbacks = options.pop("link_error", None)
    countdown = options.pop("countdown", None)
    eta = app.now() + dt.timedelta(seconds=countdown) if countdown else options.pop("eta", None)
    if isinstance(eta, dt.datetime):
        eta = eta.isoformat()
    expires = options.pop("expires", None)
    if isinstance(expires, numbers.Real):
        expires = app.now() + dt.timedelta(seconds=float(expires))
    if isinstance(expires, dt.datetime):
        expires = expires.isoformat()
    return TaskMessage(sig.task, id=sig.id, args=sig.args, kwargs=sig.kwargs,
                       callbacks=[dict(s) for s in callbacks] if callbacks else None,
                       errbacks=[dict(s) for s in errbacks] if errbacks else None,
                       eta=eta, expires=expires, utc=utc, **options)


def ContextMock(*args: Any, **kwargs: Any) -> Any:
    """A Mock usable in a ``with`` statement: entering returns the mock itself."""
    mock = MagicMock(*args, **kwargs)
    mock.__enter__.return_value = mock
    mock.__exit__.return_value = None
    return mock
