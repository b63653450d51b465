"""RabbitMQ connections for celeriac: URL parsing, connecting, errors that say what is wrong.

URL forms (kombu's): ``amqp://user:password@host:port/vhost?heartbeat=30``.
``pyamqp://`` is the same as ``amqp://``; ``amqps://`` is TLS (default port 5671).
The vhost is URL-decoded; an empty path or ``//`` means the default vhost ``/``
(write ``%2F`` for a literal slash). User and password default to ``guest``.
Query options: ``heartbeat`` (seconds, 0 = off), ``connect_timeout`` (seconds), and
aiormq's TLS options ``cafile``, ``capath``, ``certfile``, ``keyfile``,
``no_verify_ssl=1``; the same keys work in the transport options, plus ``ssl``
(``True``, an ``ssl.SSLContext``, or Celery's ``broker_use_ssl`` dict with
``ca_certs``/``certfile``/``keyfile``/``cert_reqs``).

Errors: a refused login, an unknown or forbidden vhost and a TLS mismatch are
``BrokerConnectionError`` at once (retrying cannot fix them). An unreachable server or
a dropped connection is ``ConnectionLost`` (a subclass) so callers may retry it.
Every message names the URL with its password masked.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

from aiormq.abc import AbstractConnection, ChannelFrame
from aiormq.connection import (
    Connection,
    TCPTransportFactory,
    TLSTransportFactory,
    TransportFactory,
)
from aiormq.exceptions import (
    AMQPConnectionError,
    AuthenticationError,
    ConnectionClosed,
    InvalidFrameError,
    ProbableAuthenticationError,
)

from celeriac.brokers.base import mask_url
from celeriac.errors import BrokerConnectionError, ConfigurationError

DEFAULT_PORTS = {"amqp": 5672, "amqps": 5671}
#: query keys passed through to aiormq as they are
_AIORMQ_QUERY = ("cafile", "capath", "cadata", "certfile", "keyfile", "no_verify_ssl",
                 "name", "auth")


class ConnectionLost(BrokerConnectionError):
    """A transient failure: the server is unreachable or dropped us. Retrying may help."""


@dataclass(frozen=True)
class ConnParams:
    """Everything needed to open a connection, parsed once from the URL and options."""

    url: str
    scheme: str
    host: str
    port: int
    user: str
    password: str
    vhost: str
    heartbeat: int = 60
    connect_timeout: float = 4.0
    query: dict[str, str] = field(default_factory=dict)
    ssl_context: ssl.SSLContext | None = None

    @property
    def masked(self) -> str:
        return mask_url(self.url)

    def aiormq_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        query = dict(self.query, heartbeat=str(self.heartbeat))
        return (f"{self.scheme}://{quote(self.user, safe='')}:{quote(self.password, safe='')}"
                f"@{host}:{self.port}/{quote(self.vhost, safe='')}?{urlencode(query)}")


def parse_url(url: str, options: Mapping[str, Any] | None = None) -> ConnParams:
    """``amqp://u:p@h:5672/vh?heartbeat=10`` + transport options -> ConnParams."""
    options = options or {}
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "pyamqp":
        scheme = "amqp"
    if scheme not in DEFAULT_PORTS:
        raise ConfigurationError(f"not an AMQP URL: {mask_url(url)!r}")
    query: dict[str, str] = {}
    for pair in filter(None, parts.query.split("&")):
        key, _, value = pair.partition("=")
        query[unquote(key)] = unquote(value)
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError as exc:
        raise ConfigurationError(f"bad port in {mask_url(url)!r}") from exc
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    vhost = unquote(path) or "/"

    def pick(*names: str, default: Any) -> Any:
        for name in names:
            if name in options:
                return options[name]
            if name in query:
                return query[name]
        return default

    try:
        heartbeat = int(float(pick("heartbeat", default=60)))
        timeout = float(pick("connect_timeout", "connection_timeout", default=4.0))
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"bad heartbeat/connect_timeout for {mask_url(url)}") from exc
    passthrough = {k: str(pick(k, default="")) for k in _AIORMQ_QUERY if pick(k, default="")}
    return ConnParams(
        url=url, scheme=scheme, host=parts.hostname or "localhost", port=port,
        user=unquote(parts.username) if parts.username is not None else "guest",
        password=unquote(parts.password) if parts.password is not None else "guest",
        vhost=vhost, heartbeat=max(0, heartbeat), connect_timeout=timeout,
        query=passthrough, ssl_context=_ssl_context(options.get("ssl"), scheme),
    )


def _ssl_context(value: Any, scheme: str) -> ssl.SSLContext | None:
    """Celery's ``broker_use_ssl`` (True, a dict or an SSLContext) -> an SSLContext."""
    if isinstance(value, ssl.SSLContext):
        return value
    if not value or scheme != "amqps":
        return None
    if value is True:
        return ssl.create_default_context()
    if not isinstance(value, Mapping):
        raise ConfigurationError("transport option 'ssl' must be True, a dict or an SSLContext")
    context = ssl.create_default_context(cafile=value.get("ca_certs") or value.get("cafile"))
    if value.get("certfile"):
        context.load_cert_chain(value["certfile"], value.get("keyfile"))
    if value.get("cert_reqs") == ssl.CERT_NONE:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def explain(exc: BaseException, params: ConnParams) -> BrokerConnectionError:
    """Turn an aiormq/OS error into a BrokerConnectionError that says what to fix."""
    where = f"RabbitMQ at {params.masked}"
    text = str(exc) or type(exc).__name__
    if isinstance(exc, (ProbableAuthenticationError, AuthenticationError)):
        return BrokerConnectionError(
            f"{where} refused the login of user {params.user!r}: wrong user name or "
            f"password ({text})")
    if (isinstance(exc, InvalidFrameError) and "OpenOk" in text) or (
            isinstance(exc, ConnectionClosed) and exc.args and exc.args[0] == 530):
        return BrokerConnectionError(
            f"{where}: virtual host {params.vhost!r} does not exist or user "
            f"{params.user!r} may not use it (rabbitmqctl add_vhost / set_permissions)")
    if "SSL" in text or isinstance(exc, ssl.SSLError):
        return BrokerConnectionError(f"{where}: TLS failed ({text}); amqps:// needs the "
                                     "TLS port (5671) and matching certificates")
    if isinstance(exc, asyncio.TimeoutError):
        return ConnectionLost(f"{where} did not answer within {params.connect_timeout:g}s")
    if isinstance(exc, (AMQPConnectionError, OSError, ConnectionError)):
        return ConnectionLost(f"{where} is unreachable or closed the connection: {text}")
    return ConnectionLost(f"{where}: {type(exc).__name__}: {text}")


class _KeepWriter(TransportFactory):
    """aiormq's own transport factory, keeping the connection's StreamWriter for
    ``write_frames``."""

    def __init__(self, inner: TransportFactory) -> None:
        self.inner = inner
        self.writer: asyncio.StreamWriter | None = None

    async def create(self, url: Any, **kwargs: Any
                     ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await self.inner.create(url, **kwargs)
        self.writer = writer
        return reader, writer


#: each open connection's StreamWriter (see write_frames)
_WRITERS: weakref.WeakKeyDictionary[AbstractConnection, asyncio.StreamWriter] = (
    weakref.WeakKeyDictionary())


async def open_connection(params: ConnParams) -> Connection:
    """One connection attempt, bounded by connect_timeout; raises explain()'s errors."""
    url = params.aiormq_url()
    factory = _KeepWriter(TLSTransportFactory() if url.startswith("amqps")
                          else TCPTransportFactory())
    conn = Connection(url, context=params.ssl_context, transport_factory=factory)
    try:
        await asyncio.wait_for(conn.connect(), params.connect_timeout)
    except asyncio.CancelledError:
        await _quiet_close(conn)
        raise
    except Exception as exc:
        await _quiet_close(conn)
        raise explain(exc, params) from exc
    if factory.writer is not None:
        _WRITERS[conn] = factory.writer
    return conn


async def write_frames(conn: AbstractConnection, payload: bytes) -> None:
    """Write ready-made frames (publishes, acks). Straight to the socket when aiormq's
    writer task has nothing queued, else behind what it has: the bytes go out in the
    order of the calls either way. Why: the hop through aiormq's queue and writer task
    cost a loop turn (~40 us) per write, on the critical path of a result's way back
    to the caller, and its queue holds only 10 frames before a put waits."""
    writer = _WRITERS.get(conn)
    if writer is not None and conn.write_queue.empty() and not writer.is_closing():
        writer.write(payload)
        return
    await conn.write_queue.put(ChannelFrame(payload=payload, should_close=False))


async def _quiet_close(conn: Connection) -> None:
    try:
        await asyncio.wait_for(conn.close(), 2.0)
    except Exception:  # the connection is being dropped anyway
        pass


def backoff_s(attempt: int, cap_s: float) -> float:
    """0.1 s, 0.2 s, 0.4 s ... up to cap_s, with +-20% jitter so workers do not stampede."""
    jitter: float = random.uniform(0.8, 1.2)
    return min(cap_s, 0.1 * 2.0 ** min(attempt, 16)) * jitter


def is_alive(conn: Connection | None) -> bool:
    return conn is not None and not conn.is_closed and conn.is_opened


async def close_connection(conn: Connection | None) -> None:
    if conn is not None and not conn.is_closed:
        await _quiet_close(conn)
