"""The command line as a user meets it: call, result, purge, --version, and clear errors."""

from __future__ import annotations

import subprocess
import sys

from celeriac import __version__
from tests.integration.conftest import HERE, Harness


def test_version() -> None:
    out = subprocess.run([sys.executable, "-m", "celeriac", "--version"], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == f"celeriac, version {__version__}"


def test_call_then_result_then_purge(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    sent = h.cli("call", "add", "--args", "[40, 2]")
    assert sent.returncode == 0, sent.stderr
    task_id = sent.stdout.strip()
    assert len(task_id) == 36
    for _ in range(3):
        h.cli("call", "add", "--args", "[1, 1]")
    purged = h.cli("purge", "-f")
    assert purged.returncode == 0
    assert "Purged 4 messages from 1 known task queue." in purged.stdout
    h.cli("call", "add", "--args", "[40, 2]", "--task-id", "fixed-id")
    worker = h.worker("-P", "solo")
    got = h.cli("result", "fixed-id", "--timeout", "20")
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() == "42"
    worker.stop()


def test_purge_asks_before_deleting(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    h.cli("call", "add", "--args", "[1, 1]")
    refused = h.cli("purge", input_text="n\n")
    assert refused.returncode == 1 and "Aborted" in refused.stderr
    assert "Purged 1 message" in h.cli("purge", input_text="y\n").stdout


def test_wrong_arguments_get_one_line_that_says_what_to_do(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    bad_json = h.cli("call", "add", "--args", "[1,")
    assert bad_json.returncode == 2 and "not JSON" in bad_json.stderr
    bad_pool = h.cli("worker", "-P", "fibers")
    assert bad_pool.returncode == 2 and "'fibers' is not one of" in bad_pool.stderr
    bad_level = h.cli("worker", "-l", "loud")
    assert bad_level.returncode == 2 and "unknown log level 'loud'" in bad_level.stderr
    missing = subprocess.run([sys.executable, "-m", "celeriac", "-A", "no_such_module",
                              "worker"], cwd=HERE, capture_output=True, text=True)
    assert missing.returncode == 2
    assert "module 'no_such_module' not found" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_worker_accepts_a_late_dash_a_and_celerys_ignored_flags(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    proc = subprocess.Popen(
        [sys.executable, "-m", "celeriac", "worker", "-A", "taskapp", "-l", "info", "-P", "solo",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "-E"],
        cwd=HERE, env=h.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert h.client.send_task("add", (3, 4)).get(timeout=20) == 7
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert ".> task events: ON" in out


def test_unusable_broker_fails_fast_with_one_line(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    env = h.env()
    env["CELERIAC_BROKER_URL"] = "sqlite:////proc/no-such-dir/secret.db"
    failed = subprocess.run([sys.executable, "-m", "celeriac", "-A", "taskapp", "worker"],
                            cwd=HERE, env=env, capture_output=True, text=True, timeout=30)
    assert failed.returncode == 1
    assert failed.stderr.startswith("Error: ")
    assert "Traceback" not in failed.stderr
