"""What remote control commands see of a running worker, in one object."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from celeriac.control.revoked import RevokedStore
from celeriac.control.wire import LamportClock

if TYPE_CHECKING:
    from celeriac.app import Celery
    from celeriac.brokers.base import Broker
    from celeriac.worker.consumer import Consumer
    from celeriac.worker.executor import Executor
    from celeriac.worker.pools.base import Pool


@dataclass
class WorkerState:
    """The worker's parts a command may read or change."""

    app: Celery
    hostname: str
    broker: Broker
    pool: Pool
    executor: Executor
    consumer: Consumer
    revoked: RevokedStore
    #: begins a warm shutdown (Worker.stop)
    stop: Any
    clock: LamportClock = field(default_factory=LamportClock)
    started_at: float = field(default_factory=time.time)
    #: the event dispatcher when events are on (celeriac.events), else None
    events: Any = None
    pool_options: dict[str, Any] = field(default_factory=dict)
    #: the Worker itself (an application's commands reach Celery's consumer view
    #: through it: control/panel.py)
    worker: Any = None
