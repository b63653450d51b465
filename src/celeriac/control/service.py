"""Start and stop a worker's control plane: revoked store, mailbox, events.

Order at start-up (called by ``Worker.run`` before the first fetch): subscribe to the
control broadcast first, then load the revoked store, so a revoke sent in between is
heard on one or read from the other. With ``worker_enable_remote_control = False`` the
mailbox is not started; the revoked store still is (revokes stick regardless).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from celeriac.brokers.base import Broker
from celeriac.control.node import ControlNode
from celeriac.control.revoked import RevokedStore, revoked_ttl_s
from celeriac.control.state import WorkerState

if TYPE_CHECKING:
    from celeriac.worker.consumer import Consumer
    from celeriac.worker.executor import Executor
    from celeriac.worker.pools.base import Pool

logger = logging.getLogger("celeriac.control")


@dataclass
class WorkerControl:
    state: WorkerState
    node: ControlNode | None

    async def stop(self) -> None:
        if self.state.events is not None:
            await self.state.events.stop()
        if self.node is not None:
            await self.node.stop()
        await self.state.revoked.stop()


async def start_control(worker: Any, broker: Broker, pool: Pool, executor: Executor,
                        consumer: Consumer) -> WorkerControl:
    app = worker.app
    store = RevokedStore(broker, revoked_ttl_s(app))
    executor.revoked = store.ids
    state = WorkerState(app, worker.hostname, broker, pool, executor, consumer, store,
                        worker.stop, worker=worker)
    node = None
    if not app.conf.worker_enable_remote_control:
        logger.info("remote control is off (worker_enable_remote_control = False)")
    elif not broker.supports_broadcast:
        logger.warning("remote control is off: the %s broker has no broadcast",
                       type(broker).__name__)
    else:
        node = ControlNode(state)
        try:
            await node.start()
        except Exception as exc:
            logger.error("remote control could not start: %s", exc)
            node = None
    try:
        await store.load()
    except Exception as exc:
        logger.error("could not load the revoked ids from the broker: %s", exc)
    store.start()
    task_events = bool(getattr(worker, "events_enabled", False))
    if broker.supports_broadcast and (task_events or app.conf.worker_heartbeat_interval):
        from celeriac.events.dispatcher import start_worker_events

        try:
            state.events = await start_worker_events(state, task_events)
        except Exception as exc:
            logger.error("events could not start: %s", exc)
        if task_events:
            executor.events = state.events
    return WorkerControl(state, node)
