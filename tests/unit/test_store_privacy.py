"""The embedded store is private where celeriac places it, whatever the umask; a path
the user names keeps the user's permissions and is warned about when others can read it
(issue 20). Real SQLite files, opened by the app's own broker and result backend."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac import Celery
from celeriac.brokers.sqlite import files as sqlite_files

pytestmark = pytest.mark.skipif(os.name != "posix", reason="Unix file modes")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o022, 0o000], ids=["umask022", "umask000"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("CELERIAC_BROKER_URL", "CELERY_BROKER_URL", "CELERIAC_RESULT_BACKEND",
                 "CELERY_RESULT_BACKEND", "CELERIAC_HOME", "XDG_DATA_HOME"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def send_and_read(app: Celery) -> None:
    """Write through the broker and read through the backend, leaving both open."""
    result = app.send_task("privacy.noop", (1,))
    assert result.state == "PENDING"


def store_files(path: Path) -> dict[str, int]:
    """Mode of the database and of each side file SQLite keeps beside it."""
    found = {p.name: mode(p) for p in path.parent.iterdir() if p.name.startswith(path.name)}
    assert {path.name, path.name + "-wal", path.name + "-shm"} <= set(found), found
    return found


@pytest.mark.parametrize("base", ["CELERIAC_HOME", "XDG_DATA_HOME"])
def test_the_default_store_is_private_whatever_the_umask(
        tmp_path: Path, clean_env: pytest.MonkeyPatch, umask: int, base: str) -> None:
    clean_env.setenv(base, str(tmp_path / "data"))
    folder = tmp_path / "data" / ("celeriac" if base == "XDG_DATA_HOME" else "")
    with Celery("privacy", set_as_current=False) as app:
        assert app.broker_url == f"sqlite:///{folder / 'privacy.sqlite3'}"
        send_and_read(app)
        assert mode(folder) == 0o700
        files = store_files(folder / "privacy.sqlite3")
        assert files == dict.fromkeys(files, 0o600)


def test_an_older_default_store_is_tightened(tmp_path: Path, clean_env: pytest.MonkeyPatch,
                                             umask: int) -> None:
    """A store made before this release (folder 0755, files 0644) turns private."""
    clean_env.setenv("XDG_DATA_HOME", str(tmp_path))
    folder = tmp_path / "celeriac"
    folder.mkdir()
    folder.chmod(0o755)
    for name in ("legacy.sqlite3", "legacy.sqlite3-wal", "legacy.sqlite3-shm"):
        (folder / name).touch()
        (folder / name).chmod(0o644)
    with Celery("legacy", set_as_current=False) as app:
        send_and_read(app)
        assert mode(folder) == 0o700
        files = store_files(folder / "legacy.sqlite3")
        assert files == dict.fromkeys(files, 0o600)


def test_an_existing_celeriac_home_keeps_its_mode(tmp_path: Path,
                                                  clean_env: pytest.MonkeyPatch) -> None:
    """$CELERIAC_HOME may be a folder the user shares on purpose; the files are still
    private."""
    tmp_path.chmod(0o750)
    clean_env.setenv("CELERIAC_HOME", str(tmp_path))
    with Celery("home", set_as_current=False) as app:
        send_and_read(app)
        assert mode(tmp_path) == 0o750
        files = store_files(tmp_path / "home.sqlite3")
        assert files == dict.fromkeys(files, 0o600)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder every user can reach (pytest's tmp_path sits in a 0700 folder)."""
    folder = Path(tempfile.mkdtemp(prefix="celeriac-shared-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def test_a_chosen_path_keeps_the_users_mode_and_is_warned_about_once(
        shared_dir: Path, clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("CELERIAC_HOME", str(tmp_path / "home"))
    old = os.umask(0o022)
    try:
        with Celery("chosen", broker=f"sqlite:///{shared_dir}/tasks.db",
                    set_as_current=False) as app:
            send_and_read(app)
    finally:
        os.umask(old)
    db = shared_dir / "tasks.db"
    assert mode(db) == 0o644 and mode(shared_dir) == 0o755  # what the umask gave: kept
    assert sqlite_files.readers(str(db)) == "every user"
    [warning] = sqlite_files.store_warnings([str(db), str(db)])
    assert str(db) in warning and "0644" in warning and "every user" in warning
    assert sqlite_files.store_warnings([str(db)]) == []  # once per process


def test_no_warning_when_no_one_else_can_read(shared_dir: Path, tmp_path: Path,
                                              clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("CELERIAC_HOME", str(tmp_path / "home"))
    private = shared_dir / "private.db"
    private.touch()
    private.chmod(0o600)
    hidden_folder = tmp_path / "hidden"  # a 0644 file behind a 0700 folder
    hidden_folder.mkdir(mode=0o700)
    hidden = hidden_folder / "hidden.db"
    hidden.touch()
    hidden.chmod(0o644)
    group = shared_dir / "group.db"
    group.touch()
    group.chmod(0o640)
    assert sqlite_files.readers(str(private)) is None
    assert sqlite_files.readers(str(hidden)) is None
    assert (sqlite_files.readers(str(group)) or "").startswith("group ")
    assert sqlite_files.store_warnings([str(private), str(hidden)]) == []
