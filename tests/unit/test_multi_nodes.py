"""celeriac multi's node names and per-node options, as Celery's multi reads them."""

from __future__ import annotations

import socket

from celeriac.worker.multi_nodes import build_nodes, parse_args

HOST = socket.gethostname()


def test_a_number_is_a_range_of_celery_nodes() -> None:
    nodes = build_nodes(["3", "-c", "3", "--range-prefix=worker"])
    assert [n.name for n in nodes] == [f"worker{i}@{HOST}" for i in (1, 2, 3)]
    assert nodes[0].options["-c"] == "3"


def test_names_hosts_and_per_node_options() -> None:
    nodes = build_nodes(["image", "video", "data", "-c", "3", "-c:image", "10",
                         "--hostname=example.com"])
    assert [(n.name, n.options["-c"]) for n in nodes] == [
        ("image@example.com", "10"), ("video@example.com", "3"), ("data@example.com", "3")]
    ranged = build_nodes(["5", "-c", "3", "-c:1-3", "10", "-Q:4,5", "data"])
    assert [n.options["-c"] for n in ranged] == ["10", "10", "10", "3", "3"]
    assert [n.options.get("-Q") for n in ranged] == [None, None, None, "data", "data"]
    full = build_nodes(["foo@%h", "bar@box.example.com"])
    assert [n.name for n in full] == [f"foo@{HOST}", "bar@box.example.com"]


def test_pidfile_and_logfile_templates() -> None:
    node = build_nodes(["w1", "--hostname=h.example.com", "--pidfile=/run/c/%n.pid"])[0]
    assert node.pidfile == "/run/c/w1.pid"
    assert node.logfile == "/var/log/celery/w1%I.log"  # %I: the worker's to expand
    node = build_nodes(["w1", "--hostname=h.d"])[0]
    assert node.pidfile == "/var/run/celery/w1.pid"
    argv = build_nodes(["w1", "-E", "--loglevel=info", "-A", "proj", "--", "--x=1"])[0].argv()
    assert argv[1:5] == ["-m", "celeriac", "-A", "proj"]
    assert argv[5:8] == ["worker", "--detach", "-n"]
    assert argv[-3:] == ["-E", "--loglevel=info", "--x=1"]


def test_long_options_take_a_value_only_after_equals() -> None:
    parsed = parse_args(["w1", "--without-gossip", "-l", "info", "-E", "-c", "2"])
    assert parsed.values == ["w1"]
    assert parsed.options == {"--without-gossip": None, "-l": "info", "-E": None, "-c": "2"}
