"""The canvas carries types as far as Python's typing allows: ``task.s()`` is a
``Signature[R]``, ``group(...)()`` a ``GroupResult[R]`` whose ``get()`` is ``list[R]``,
``chord(header, body)()`` an ``AsyncResult`` of the body's type. mypy (a user's default
settings and --strict) and pyright check a sample, as test_typing.py does for .delay()."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api")

SAMPLE = textwrap.dedent('''
    from celeriac import Celery, chord, group
    from celeriac.result import AsyncResult
    from celeriac.result_group import GroupResult

    app = Celery("typed")

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task
    def tsum(xs: list[int]) -> int:
        return sum(xs)

    @app.task
    def name(x: int) -> str:
        return str(x)

    g = group(add.s(i, i) for i in range(10))
    res = g()
    reveal_type(res)
    reveal_type(res.get())
    reveal_type(group(add.s(1, 1), add.s(2, 2)).apply_async().join())
    c = chord(group(add.s(i, i) for i in range(10)), tsum.s())()
    reveal_type(c)
    reveal_type(c.get())
    reveal_type(chord([add.s(1, 1)], name.s()).apply_async().get())
    reveal_type(add.s(1, 2).delay().get())
    later = chord([add.s(1, 1)])
    reveal_type(later(tsum.s()))
    wrong: GroupResult[str] = group(add.s(1, 1))()
    also_wrong: AsyncResult[str] = chord([add.s(1, 1)], tsum.s())()
''')

#: the line of each reveal_type above, in order, and the type mypy / pyright print
EXPECTED = [("GroupResult[int]", "GroupResult[int]"), ("list[int]", "list[int]"),
            ("list[int]", "list[int]"), ("AsyncResult[int]", "AsyncResult[int]"),
            ("int", "int"), ("str", "str"), ("int", "int"),
            ("AsyncResult[Any]", "AsyncResult[Any]")]


def _mypy(tmp_path: Path, *flags: str) -> list[str]:
    sample = tmp_path / "sample.py"
    sample.write_text(SAMPLE)
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\n")
    out, _, _ = mypy_api.run([str(sample), "--config-file", str(config), "--no-incremental",
                              "--cache-dir", str(tmp_path / "cache"), *flags,
                              "--show-error-codes", "--no-error-summary"])
    return out.splitlines()


@pytest.mark.parametrize("flags", [(), ("--strict",)], ids=["default", "strict"])
def test_mypy_sees_canvas_types(tmp_path: Path, flags: tuple[str, ...]) -> None:
    lines = _mypy(tmp_path, *flags)
    reveals = [line.split('Revealed type is "')[1].rstrip('"') for line in lines
               if "Revealed type" in line]
    assert [r.replace("celeriac.result_group.", "").replace("celeriac.result.", "")
            .replace("builtins.", "") for r in reveals] == [m for m, _ in EXPECTED], lines
    errors = [line for line in lines if ": error:" in line]
    assert len(errors) == 2, errors  # the two wrong annotations, nothing else
    assert all("Incompatible types in assignment" in e for e in errors), errors


def test_pyright_sees_canvas_types(tmp_path: Path) -> None:
    pyright = shutil.which("pyright") or str(Path(sys.executable).with_name("pyright"))
    if not Path(pyright).exists():
        pytest.skip("pyright is not installed (pip install -e '.[dev]')")
    sample = tmp_path / "sample.py"
    sample.write_text(SAMPLE)
    done = subprocess.run([pyright, "--pythonpath", sys.executable, str(sample)],
                          capture_output=True, text=True, timeout=300)
    out = done.stdout
    types = [line.split('" is "')[1].rstrip('"') for line in out.splitlines()
             if "information: Type of" in line]
    assert types == [p for _, p in EXPECTED], out
    assert out.count("error:") == 2, out
