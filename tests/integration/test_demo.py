"""The README's demo command works: the tutorial end to end on the embedded broker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parents[2] / "examples" / "meiduo_sms" / "run_demo.py"


def test_the_tutorial_demo_runs_end_to_end() -> None:
    done = subprocess.run([sys.executable, str(DEMO)], capture_output=True, text=True,
                          timeout=120)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "demo OK" in out
    assert ".> transport:   sqlite:///" in out
    assert "  . ccp_send_sms_code" in out
    assert "retry: Retry in" in out and "发送短信失败" in out
    assert out.count("-> 0 (SUCCESS)") == 3
    assert "Warm shutdown" in out
