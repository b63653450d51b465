"""The beat store on RabbitMQ, without plugins: two durable queues.

Leadership: ``celeriac.beat.leader`` is a single-active-consumer queue holding a token
message. Every scheduler consumes it with a prefetch of one; RabbitMQ delivers to one
consumer only, and the one holding the (unacked) token leads. When its connection dies
(a SIGKILL closes the socket at once; a hung host is found by the heartbeat, set to
``beat_leader_timeout``, at least 2 s: RabbitMQ drops it after two missed beats)
RabbitMQ gives the token to the next consumer. A scheduler that finds the queue empty
adds a token; the leader purges extras (a purge only takes ready messages, never the
one it holds).

State: ``celeriac.beat.state`` (``x-max-length: 1``, so only the newest message stays)
holds one persistent snapshot of every entry's last run, published with a confirm.
Only the token holder claims: its claims are compare-and-sets against the snapshot it
read on taking the lead and publishes itself, so they are exact as long as RabbitMQ
gives the token to one consumer at a time (what single-active-consumer guarantees). A
store that does not hold the token answers every claim False.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Sequence
from typing import Any

from aiormq.abc import DeliveredMessage
from aiormq.connection import Connection
from pamqp.commands import Basic

from celeriac.beat.store import BeatStore, Claim
from celeriac.bridge import BRIDGE
from celeriac.brokers.amqp.link import close_connection, is_alive, open_connection, parse_url

LEADER_QUEUE = "celeriac.beat.leader"
STATE_QUEUE = "celeriac.beat.state"
_TOKEN_WAIT_S = 0.5


class AmqpStore(BeatStore):
    """See the module docstring. Its calls run on the bridge loop (celeriac.bridge)."""

    def __init__(self, url: str, options: dict[str, Any] | None = None,
                 lease_s: float = 5.0) -> None:
        options = dict(options or {})
        options.setdefault("heartbeat", max(2, int(lease_s)))
        self.params = parse_url(url, options)
        self._conn: Connection | None = None
        self._channel: Any = None
        self._token: int | None = None  # delivery tag of the token we hold
        self._got_token = threading.Event()
        self._values: dict[str, str] | None = None  # the snapshot, while leading
        self._seq = 0

    # -- connection ---------------------------------------------------------------------
    async def _open(self) -> Any:
        if is_alive(self._conn) and self._channel is not None and not self._channel.is_closed:
            return self._channel
        self._token, self._values = None, None
        self._got_token.clear()
        self._conn = await open_connection(self.params)
        channel = await self._conn.channel(publisher_confirms=True)
        await channel.basic_qos(prefetch_count=1)
        await channel.queue_declare(LEADER_QUEUE, durable=True,
                                    arguments={"x-single-active-consumer": True})
        await channel.queue_declare(STATE_QUEUE, durable=True,
                                    arguments={"x-max-length": 1})
        self._channel = channel
        await channel.basic_consume(LEADER_QUEUE, self._on_token, no_ack=False)
        return channel

    async def _on_token(self, message: DeliveredMessage) -> None:
        self._token = message.delivery_tag
        self._got_token.set()

    # -- the contract -------------------------------------------------------------------
    def lead(self, node: str, ttl_s: float) -> bool:
        return BRIDGE.run(self._lead(), ttl_s)

    async def _lead(self) -> bool:
        channel = await self._open()
        if self._token is None:
            ok = await channel.queue_declare(LEADER_QUEUE, passive=True)
            if not ok.message_count:
                await channel.basic_publish(b"token", routing_key=LEADER_QUEUE,
                                            properties=Basic.Properties(delivery_mode=2))
            try:
                await asyncio.wait_for(asyncio.shield(self._wait_token()), _TOKEN_WAIT_S)
            except TimeoutError:
                return False
        if self._values is None:
            self._values = await self._read(channel)
            ok = await channel.queue_declare(LEADER_QUEUE, passive=True)
            if ok.message_count:
                await channel.queue_purge(LEADER_QUEUE)
        return True

    async def _wait_token(self) -> None:
        while self._token is None:
            await asyncio.sleep(0.02)

    async def _read(self, channel: Any) -> dict[str, str]:
        """The newest snapshot (by its sequence number; it is handed back to the queue,
        older ones a reader raced into it are dropped)."""
        got = []
        for _ in range(100):
            message = await channel.basic_get(STATE_QUEUE, no_ack=False)
            if message is None or message.delivery_tag is None:
                break
            got.append((int(json.loads(message.body).get("seq", 0)), message.delivery_tag,
                        message.body))
        if not got:
            return {}
        got.sort()
        for _seq, tag, _body in got[:-1]:
            await channel.basic_ack(tag)
        seq, tag, body = got[-1]
        await channel.basic_reject(tag, requeue=True)
        self._seq = max(self._seq, seq)
        values = json.loads(body).get("values", {})
        return {str(k): str(v) for k, v in values.items()}

    def resign(self, node: str) -> None:
        BRIDGE.run(self._close(), 10.0)

    def load(self, names: Sequence[str]) -> dict[str, str | None]:
        values = self._values
        if values is None:
            values = BRIDGE.run(self._load(), 30.0)
        return {n: values.get(n) for n in names}

    async def _load(self) -> dict[str, str]:
        return await self._read(await self._open())

    def claim(self, claims: Sequence[Claim]) -> list[bool]:
        return BRIDGE.run(self._claim(claims), 30.0)

    async def _claim(self, claims: Sequence[Claim]) -> list[bool]:
        values = self._values
        if values is None or self._token is None or not is_alive(self._conn):
            return [False] * len(claims)
        changed = dict(values)
        out = []
        for name, expected, new in claims:
            ok = changed.get(name) == expected
            if ok:
                changed[name] = new
            out.append(ok)
        if any(out):
            self._seq += 1
            body = json.dumps({"seq": self._seq, "values": changed}).encode()
            try:
                await self._channel.basic_publish(
                    body, routing_key=STATE_QUEUE,
                    properties=Basic.Properties(delivery_mode=2,
                                                content_type="application/json"))
            except Exception:
                self._values = None  # unknown: read it again on the next lead
                return [False] * len(claims)
            self._values = changed
        return out

    async def _close(self) -> None:
        conn, self._conn, self._channel = self._conn, None, None
        self._token, self._values = None, None
        await close_connection(conn)

    def close(self) -> None:
        if self._conn is not None:
            BRIDGE.run(self._close(), 10.0)
