"""A fault-injecting TCP proxy for the chaos tests (asyncio, on a thread of its own).

Put it between a client or worker and its broker (``FaultProxy(upstream_port)``, then
connect to ``proxy.port``) and break the link on demand, mid-stream:

- ``cut()``          reset every open connection (RST); new connections are accepted.
- ``delay(s)``       hold every chunk ``s`` seconds before forwarding (both ways).
- ``blackhole()``    a partition: nothing moves on any connection, old or new, until
                     ``heal()``; bytes are held, not dropped, like TCP across a healed link.
- ``silence_existing()``  the open connections go silent for good (bytes vanish, no FIN,
                     no RST: a half-open link after a NAT or conntrack reset); new
                     connections work. Only a client with timeouts gets out of this.
- ``heal()``         back to forwarding everything at once.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import Coroutine
from typing import Any


class _Link:
    """One proxied connection: the client side and the upstream side."""

    def __init__(self, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter) -> None:
        self.writers = (client, upstream)
        self.silent = False

    def reset(self) -> None:
        for writer in self.writers:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                try:  # linger 0: close sends RST, the peer sees "connection reset"
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                    struct.pack("ii", 1, 0))
                except OSError:
                    pass
            writer.transport.abort()


class FaultProxy:
    """See the module docstring."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.delay_s = 0.0
        self.connections = 0
        #: ``connections`` when a fault first broke the open links (cut or silenced)
        self.broken_at: int | None = None
        self._links: set[_Link] = set()
        self._open = asyncio.Event()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        started = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(started,),
                                        name="chaos-proxy", daemon=True)
        self._thread.start()
        started.wait(5)
        assert self._server is not None
        self.port: int = self._server.sockets[0].getsockname()[1]

    # -- control (from the test's thread) ------------------------------------------------
    def cut(self) -> None:
        self._call(self._cut())

    def delay(self, seconds: float) -> None:
        self.delay_s = seconds

    def blackhole(self) -> None:
        self._call(self._set_open(False))

    def silence_existing(self) -> None:
        self._call(self._silence())

    def heal(self) -> None:
        self.delay_s = 0.0
        self._call(self._set_open(True))

    def close(self) -> None:
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(5)

    # -- the proxy (on its own loop) ------------------------------------------------------
    def _serve(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._open.set()
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._accept, "127.0.0.1", 0))
        started.set()
        self._loop.run_forever()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        link = _Link(writer, up_writer)
        self._links.add(link)
        try:
            await asyncio.gather(self._pump(reader, up_writer, link),
                                 self._pump(up_reader, writer, link))
        finally:
            self._links.discard(link)
            for w in (writer, up_writer):
                w.transport.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    link: _Link) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                await self._open.wait()
                if link.silent:
                    continue  # the bytes vanish
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            link.reset()

    def _mark_broken(self) -> None:
        if self.broken_at is None:
            self.broken_at = self.connections

    async def _cut(self) -> None:
        self._mark_broken()
        for link in list(self._links):
            link.reset()

    async def _set_open(self, is_open: bool) -> None:
        if is_open:
            self._open.set()
        else:
            self._open.clear()

    async def _silence(self) -> None:
        self._mark_broken()
        for link in self._links:
            link.silent = True

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._cut()
