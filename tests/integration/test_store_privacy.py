"""A real worker on the embedded store: it warns once when other users can read a store
the user placed, and says nothing about the private default one (issue 20)."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Harness

pytestmark = pytest.mark.skipif(os.name != "posix", reason="Unix file modes")

WARNING = "can be read by every user"


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder every user can reach (pytest's tmp_path sits in a 0700 folder)."""
    folder = Path(tempfile.mkdtemp(prefix="celeriac-shared-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def test_the_worker_warns_once_about_a_store_others_can_read(
        tmp_path: Path, shared_dir: Path) -> None:
    db = shared_dir / "tasks.db"
    db.touch()
    db.chmod(0o644)
    harness = Harness(tmp_path, f"sqlite:///{db}")
    try:
        worker = harness.worker("-P", "threads", "-c", "2")
        assert harness.client.send_task("add", (1, 2)).get(timeout=20) == 3
        assert worker.stop() == 0
    finally:
        harness.close()
    assert worker.log.count(WARNING) == 1, worker.log
    assert f"the embedded store {db} (mode 0644)" in worker.log
    assert stat.S_IMODE(db.stat().st_mode) == 0o644  # the user's choice is kept


def test_the_default_store_is_private_and_not_warned_about(tmp_path: Path) -> None:
    home = tmp_path / "home"
    harness = Harness(tmp_path, "sqlite://")
    try:
        worker = harness.worker("-P", "solo", CELERIAC_HOME=str(home))
        assert worker.stop() == 0
    finally:
        harness.close()
    assert "embedded store" not in worker.log, worker.log
    [db] = home.glob("*.sqlite3")
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
