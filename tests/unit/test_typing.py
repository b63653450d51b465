"""Tasks carry their function's types: mypy checks ``.delay()`` and ``.get()``."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api")

SAMPLE = textwrap.dedent('''
    from celeriac import Celery, Task

    app = Celery("typed")

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(bind=True, max_retries=5)
    def bound(self: Task, name: str) -> str:
        return name

    @app.task
    async def fetch(url: str) -> bytes:
        return b""

    reveal_type(add.delay(1, 2).get())
    reveal_type(add(1, 2))
    reveal_type(fetch.delay("u").get())
    reveal_type(bound.delay("n").get())
    add.delay("one", 2)
    add.delay(1)
''')


def test_delay_and_get_are_typed(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(SAMPLE)
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\n")  # a user's default settings, not this repo's strict ones
    out, _, _ = mypy_api.run([str(sample), "--config-file", str(config), "--no-incremental",
                              "--cache-dir", str(tmp_path),
                              "--show-error-codes", "--no-error-summary"])
    lines = out.splitlines()
    reveals = [line for line in lines if "Revealed type" in line]
    assert 'Revealed type is "int"' in reveals[0]
    assert 'Revealed type is "int"' in reveals[1]
    assert 'Revealed type is "bytes"' in reveals[2]
    assert 'Revealed type is "str"' in reveals[3]
    errors = [line for line in lines if ": error:" in line]
    assert any('"delay" of "Task" has incompatible type "str"' in e for e in errors), errors
    assert any("Missing positional argument" in e for e in errors), errors
    assert len(errors) == 2, errors


def test_pyright_sees_the_same_types(tmp_path: Path) -> None:
    pyright = shutil.which("pyright") or str(Path(sys.executable).with_name("pyright"))
    if not Path(pyright).exists():
        pytest.skip("pyright is not installed (pip install -e '.[dev]')")
    sample = tmp_path / "sample.py"
    sample.write_text(SAMPLE)
    done = subprocess.run([pyright, "--pythonpath", sys.executable, str(sample)],
                          capture_output=True, text=True, timeout=300)
    out = done.stdout
    assert 'Type of "add.delay(1, 2).get()" is "int"' in out, out
    assert 'Type of "fetch.delay("u").get()" is "bytes"' in out, out
    assert 'Type of "bound.delay("n").get()" is "str"' in out, out
    assert "cannot be assigned to parameter \"x\" of type \"int\"" in out, out
