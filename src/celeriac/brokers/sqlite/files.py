"""Who can read the embedded store: private where celeriac picks the place, a warning
where the user picked one that other users can read.

The store holds every task's arguments and results (SMS codes, addresses, tokens).
Redis and RabbitMQ ask for a password; the default store is at least as private:

- In celeriac's own folder (``celeriac.config.default_sqlite_dir``: ``$CELERIAC_HOME``,
  else ``$XDG_DATA_HOME/celeriac`` or ``~/.local/share/celeriac``) the database is made
  0600 before SQLite opens it, whatever the umask; SQLite's unix VFS gives the ``-wal``
  and ``-shm`` files the database's mode, so they are 0600 too (files of an older
  install are tightened in passing). The folder is made 0700 when celeriac creates it,
  and tightened when it is the XDG one (named by celeriac); a ``$CELERIAC_HOME`` that
  already exists keeps its mode (it may be a folder the user shares on purpose).
- A path the user names in the URL keeps the user's permissions; the worker warns once
  (``store_warnings``) when other users can read it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

from celeriac.config import default_sqlite_dir

#: the files SQLite keeps beside a database
_SIDE_FILES = ("-wal", "-shm", "-journal")

#: paths already warned about in this process
_warned: set[str] = set()


def in_default_dir(path: str) -> bool:
    """True when the file lives in celeriac's own folder (the store celeriac placed)."""
    here = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    return here == os.path.realpath(default_sqlite_dir())


def prepare(path: str) -> None:
    """Create the file's folder; in celeriac's own folder, make folder and files private.

    Raises OSError when the folder cannot be created.
    """
    directory = os.path.dirname(os.path.abspath(path))
    if os.name != "posix" or not in_default_dir(path):
        os.makedirs(directory, exist_ok=True)
        return
    _private_folder(directory)
    _private_file(path, create=True)
    for suffix in _SIDE_FILES:
        _private_file(path + suffix, create=False)


def _private_folder(directory: str) -> None:
    os.makedirs(os.path.dirname(directory), exist_ok=True)
    try:
        os.mkdir(directory, 0o700)
        created = True
    except FileExistsError:
        created = False
    ours = not os.environ.get("CELERIAC_HOME")
    if created or ours:
        _chmod_if_owned(directory, 0o700)


def _private_file(path: str, create: bool) -> None:
    if create:
        try:  # 0600 from the start: no moment where the umask's mode shows
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass
    _chmod_if_owned(path, 0o600)


def _chmod_if_owned(path: str, mode: int) -> None:
    """chmod when the mode differs and this user owns the path (else leave it be)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if stat.S_IMODE(st.st_mode) != mode and st.st_uid == os.geteuid():
        os.chmod(path, mode)


def readers(path: str) -> str | None:
    """Who besides the owner can read the file (its group, or every user), or None.
    A class counts only when each folder above lets it through (an approximation of the
    Unix checks: every folder's group is taken to be the file's)."""
    try:
        mode = os.stat(path).st_mode
        folders = [os.stat(p).st_mode for p in Path(os.path.abspath(path)).parents]
    except OSError:
        return None
    if mode & stat.S_IROTH and all(m & stat.S_IXOTH for m in folders):
        return "every user"
    if mode & stat.S_IRGRP and all(m & (stat.S_IXGRP | stat.S_IXOTH) for m in folders):
        return f"group {_group_name(path)}"
    return None


def _group_name(path: str) -> str:
    gid = os.stat(path).st_gid
    try:
        import grp  # Unix only
        return grp.getgrgid(gid).gr_name
    except (ImportError, KeyError):
        return str(gid)


def store_warnings(paths: Iterable[str]) -> list[str]:
    """A warning per user-chosen store other users can read, once per path and process."""
    warnings = []
    for path in dict.fromkeys(os.path.abspath(p) for p in paths):
        if path in _warned or os.name != "posix" or in_default_dir(path):
            continue
        who = readers(path)
        if who is None:
            continue
        _warned.add(path)
        mode = stat.S_IMODE(os.stat(path).st_mode)
        warnings.append(
            f"the embedded store {path} (mode {mode:04o}) can be read by {who}, and it "
            f"holds every task's arguments and results: chmod 600 it and its -wal and -shm "
            f"files, or leave broker_url unset for the private default store")
    return warnings


__all__ = ["in_default_dir", "prepare", "readers", "store_warnings"]
