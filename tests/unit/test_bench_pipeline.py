"""``make bench-pipeline``'s harness still drives the worker's real classes: a short run
processes every task it was given (the harness asserts the count) and reports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PIPELINE = Path(__file__).resolve().parents[2] / "bench" / "pipeline.py"


def test_the_pipeline_harness_runs_every_task() -> None:
    proc = subprocess.run([sys.executable, str(PIPELINE), "300"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("300 tasks: ") and "us of CPU per task" in proc.stdout
