"""``make bench-roundtrip``'s harness still works: on the embedded SQLite broker (no
server needed) it starts a worker through the CLI, runs the round trips, and reports
each part of one."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROUNDTRIP = Path(__file__).resolve().parents[2] / "bench" / "roundtrip.py"


def test_the_roundtrip_harness_reports_each_part() -> None:
    proc = subprocess.run([sys.executable, str(ROUNDTRIP), "sqlite", "-n", "20"],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("sqlite, 20 round trips")
    parts = dict(re.findall(r"^  (\S.*?)\s+([\d.]+) /\s+[\d.]+$", proc.stdout, re.M))
    assert set(parts) == {"delay() returns", "task starts",
                          "get() returns after the task", "round trip"}
    assert 0 < float(parts["delay() returns"]) < float(parts["round trip"])
