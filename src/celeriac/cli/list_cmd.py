"""``celeriac -A APP list bindings``: the queue / exchange / routing key table of
``celery list bindings``.

As Celery does, the app's task queues are declared first (the default queue, or
``task_queues``), then the table is read from the broker:

- RabbitMQ: from the management plugin's HTTP API when it answers (every binding of
  the vhost, as Celery shows them; ``manager_hostname``/``manager_port``/
  ``manager_userid``/``manager_password`` transport options as kombu's), else the
  bindings of the app's queues just declared, with a line saying so (Celery stops with
  an error there).
- Redis: kombu's binding table (``_kombu.binding.*``: what Celery and kombu clients
  registered) together with the app's queues, as Celery prints on Redis.
- SQLite and memory: the app's queues (direct, the queue's name as exchange and key).
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import click

from celeriac.brokers.amqp.topology import Topology
from celeriac.cli.main import AppContext, app_option, run

Row = tuple[str, str, str]


def app_bindings(app: Any) -> tuple[list[str], list[Row]]:
    """(the app's queue names, their (queue, exchange, routing key) bindings)."""
    conf = app.conf
    topology = Topology(conf.task_queues)
    names = list(topology.specs) or [conf.task_default_queue]
    rows = [(q, exchange.name, key) for q in names
            for exchange, key in topology.queue(q).bindings]
    return names, rows


def table(rows: list[Row]) -> str:
    lines = [f"{'Queue':<28} {'Exchange':<28} Routing Key",
             f"{'-' * 16:<28} {'-' * 16:<28} {'-' * 16}"]
    lines += [f"{q:<28} {e:<28} {r}" for q, e, r in rows]
    return "\n".join(lines)


async def _declare_amqp(broker: Any, names: list[str]) -> None:
    """Declare the app's queues as a worker would (TaskConsumer.declare() in Celery)."""
    publisher = await broker.session.ready()
    for name in names:
        await broker.session.declarer.queue(publisher, broker.topology.queue(name))


def management_bindings(url: str, options: dict[str, Any]) -> list[Row] | None:
    """Every binding of the vhost from RabbitMQ's management API; None if it does not
    answer."""
    parts = urllib.parse.urlsplit(url)
    vhost = urllib.parse.unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    host = options.get("manager_hostname") or parts.hostname or "localhost"
    port = int(options.get("manager_port") or 15672)
    user = options.get("manager_userid") or urllib.parse.unquote(parts.username or "guest")
    password = options.get("manager_password") or urllib.parse.unquote(
        parts.password or "guest")
    request = urllib.request.Request(
        f"http://{host}:{port}/api/bindings/{urllib.parse.quote(vhost, safe='')}")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            found = json.load(response)
    except (OSError, urllib.error.URLError, ValueError):
        return None
    return [(b["destination"], b["source"], b["routing_key"]) for b in found
            if b.get("destination_type") == "queue"]


def redis_bindings(url: str, options: dict[str, Any]) -> list[Row]:
    """kombu's binding table on Redis (members 'key\\x06\\x16pattern\\x06\\x16queue')."""
    import redis

    prefix = str(options.get("global_keyprefix") or "")
    client = redis.Redis.from_url(url)
    try:
        rows = []
        for key in client.scan_iter(f"{prefix}_kombu.binding.*"):
            name = key.decode() if isinstance(key, bytes) else str(key)
            exchange = name.removeprefix(prefix).removeprefix("_kombu.binding.")
            for member in client.smembers(key):
                text = member.decode("utf-8", "replace") if isinstance(member, bytes) \
                    else str(member)
                fields = text.split("\x06\x16")
                if len(fields) == 3:
                    rows.append((fields[2], exchange, fields[0]))
        return rows
    finally:
        client.close()


@click.group("list")
@app_option
def list_() -> None:
    """Information from the broker (Celery's 'celery list')."""


@list_.command()
@click.pass_obj
def bindings(ctx: AppContext) -> None:
    """The queue bindings: queue, exchange, routing key."""
    app = ctx.app
    url = app.broker_url
    scheme = url.split("://", 1)[0].split("+", 1)[0]
    names, rows = app_bindings(app)
    note = ""
    if scheme in ("amqp", "amqps", "pyamqp"):
        async def declare() -> None:
            broker = app._new_broker()
            await broker.connect()
            try:
                await _declare_amqp(broker, names)
            finally:
                await broker.close()

        run(declare())
        found = management_bindings(url, app.broker_options())
        if found is None:
            note = ("(the bindings of this app's queues, declared just now: RabbitMQ's "
                    "management plugin did not answer on port "
                    f"{app.broker_options().get('manager_port') or 15672} for the full list)")
        else:
            rows = found
    elif scheme in ("redis", "rediss"):
        try:
            rows = sorted(set(rows) | set(redis_bindings(url, app.broker_options())))
        except Exception as exc:
            raise click.ClickException(f"cannot read the binding table: {exc}") from None
    click.echo(table(rows))
    if note:
        click.echo(note)
