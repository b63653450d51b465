"""The worker's mailbox: hears control broadcasts, runs commands, sends the replies.

One asyncio task on the worker's loop reads the subscription to ``celery.pidbox``
(``<hostname>.celery.pidbox`` on AMQP) and handles each request in order: a request
for another node is ignored; a malformed one, an expired one, or (with
``security_key``) an unsigned one gets one log line and is dropped; an unknown
command gets one log line and, if a reply was asked for, ``{"error": ...}`` as
kombu answers. A command that raises replies ``{"error": repr(exc)}``. Nothing here
raises into the worker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from celeriac import signing
from celeriac.brokers.base import Subscription
from celeriac.control import wire
from celeriac.control.commands import COMMANDS
from celeriac.control.state import WorkerState
from celeriac.errors import CeleriacError
from celeriac.protocol import Message
from celeriac.utils.aio import cancel_and_wait

logger = logging.getLogger("celeriac.control")
#: how long one read of the subscription waits before looking at the stop flag
READ_WAIT_S = 1.0


class ControlNode:
    """See the module docstring."""

    def __init__(self, state: WorkerState) -> None:
        self.state = state
        conf = state.app.conf
        self.namespace = str(conf.control_exchange or "celery")
        self.security_key: str | None = conf.security_key or None
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Subscribe before returning, so a broadcast sent after start-up is heard."""
        state = self.state
        self._sub = await state.broker.subscribe(
            wire.pidbox_exchange(self.namespace),
            wire.node_queue(state.hostname, self.namespace), "")
        self._task = asyncio.create_task(self._listen(), name="control-mailbox")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        sub, self._sub = self._sub, None
        if sub is not None:
            try:
                await sub.close()
            except Exception as exc:
                logger.debug("closing the control subscription: %s", exc)

    async def _listen(self) -> None:
        assert self._sub is not None
        while True:
            try:
                messages = await self._sub.get(READ_WAIT_S)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("reading control messages failed: %s", exc)
                await asyncio.sleep(1.0)
                continue
            for message in messages:
                await self.handle(message)

    async def handle(self, message: Message) -> Any:
        """One control message, start to finish; returns the reply (or None)."""
        try:
            return await self._handle(message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug here must not stop the mailbox
            logger.exception("control message failed: %s", exc)
            return None

    async def _handle(self, message: Message) -> Any:
        state = self.state
        if self.security_key:
            problem = signing.verify(message, self.security_key)
            if problem:
                logger.warning("dropped a control message: %s", problem)
                return None
        try:
            request = wire.decode_request(message)
        except CeleriacError as exc:
            logger.warning("dropped a malformed control message: %s", exc)
            return None
        state.clock.adjust(request.clock)
        if not request.for_node(state.hostname):
            return None
        if request.expires and time.time() > request.expires:
            logger.info("dropped an expired control message: %s", request.method)
            return None
        fun = COMMANDS.get(request.method)
        if fun is None:
            logger.warning("No such control command: %s", request.method)
            reply: Any = {"error": f"No such command: {request.method}"}
        else:
            try:
                reply = await fun(state, **request.arguments)
            except Exception as exc:
                logger.error("Control command error: %r", exc)
                reply = {"error": repr(exc)}
            forward = getattr(state.pool, "forward", None)
            if forward is not None:  # consumer children hear it too
                forward(request.method, request.arguments)
        if request.reply_to and request.ticket:
            await self._reply(request, reply)
        return reply

    async def _reply(self, request: wire.Request, reply: Any) -> None:
        assert request.reply_to is not None
        exchange, routing_key = request.reply_to["exchange"], request.reply_to["routing_key"]
        message = wire.reply_message(self.state.hostname, reply, request.ticket,
                                     self.state.clock.forward(), routing_key)
        try:
            await self.state.broker.send_direct(exchange, routing_key, message)
        except Exception as exc:
            logger.warning("could not send the reply to %s: %s", request.method, exc)
