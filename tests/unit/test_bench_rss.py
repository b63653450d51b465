"""The bench's RSS sampler: it counts a worker's children, and it does not walk the
process table at every sample (that walk cost 1.8 ms of CPU 20 times a second and
showed in every system's round-trip p99)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import infra


def test_the_sampler_counts_children_and_looks_them_up_once_a_second(monkeypatch: Any
                                                                        ) -> None:
    # a parent holding 40 MB, with a child holding 40 MB of its own
    code = ("import subprocess, sys, time; b = bytearray(40 << 20); "
            "c = subprocess.Popen([sys.executable, '-c', "
            "'import time; b = bytearray(40 << 20); time.sleep(30)']); time.sleep(30)")
    parent = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # until the child holds its bytearray
            children = psutil.Process(parent.pid).children()
            if children and children[0].memory_info().rss > 40 << 20:
                break
            time.sleep(0.05)
        sampler = infra.RssSampler(parent.pid)
        lookups = []
        real_children = psutil.Process.children

        def counting(self: psutil.Process, recursive: bool = False) -> Any:
            lookups.append(time.monotonic())
            return real_children(self, recursive=recursive)
        monkeypatch.setattr(psutil.Process, "children", counting)
        sampler.start()
        time.sleep(1.6)
        sampler.stop()
        assert sampler.peak_bytes > 80 << 20  # the child's memory is counted
        assert 1 <= len(lookups) <= 3  # ~30 samples, a lookup a second
        assert sampler.current() > 80 << 20 and len(lookups) >= 2  # current(): fresh
    finally:
        for child in psutil.Process(parent.pid).children(recursive=True):
            child.kill()
        parent.kill()
        parent.wait()
