"""Running a worker as a daemon: pidfiles, ``--detach``, ``--uid/--gid``, log files.

What Celery's ``celery.platforms`` does for ``celery worker --detach`` and
``celery multi``, in celeriac's words:

- ``Pidfile``: the worker's pid in a file created exclusively (``O_EXCL``), removed at
  exit. A pidfile whose process is gone (or that holds no pid) is stale and replaced;
  one whose process lives means the node already runs: the second worker exits with
  Celery's message.
- ``detach``: double fork and ``setsid`` (no controlling terminal, not a session
  leader), ``chdir`` to the working directory (the current one by default, so ``-A
  proj`` still imports), ``umask``, standard streams to /dev/null, then ``exec`` a fresh
  ``python -m celeriac ... worker`` without ``--detach``: the daemon is a clean process,
  not a fork of the command that started it. Before detaching, the log file is opened
  once and the pidfile checked, so those errors still reach the terminal.
- ``drop_privileges``: ``--uid``/``--gid`` (names or numbers) switch user and group; only
  root can do that, anyone else gets an error saying so (unless it is already them).
"""

from __future__ import annotations

import errno
import logging
import os
import sys
from collections.abc import Sequence

from celeriac.errors import ConfigurationError

logger = logging.getLogger("celeriac.worker")


class PidfileLocked(ConfigurationError):
    """The pidfile names a process that is still running."""


class Pidfile:
    """One worker's pidfile (see the module docstring)."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)

    def read_pid(self) -> int | None:
        """The pid in the file; None when there is no file. ValueError when it holds
        something else."""
        try:
            with open(self.path) as fh:
                text = fh.readline().strip()
        except FileNotFoundError:
            return None
        return int(text)

    def is_stale(self) -> bool:
        """True when the file exists but its process does not (or it holds no pid)."""
        try:
            pid = self.read_pid()
        except ValueError:
            return True
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False  # alive, someone else's
        return False

    def acquire(self) -> None:
        """Write our pid, replacing a stale file; PidfileLocked if the node runs."""
        if self.is_stale():
            logger.warning("Stale pidfile exists - Removing it. (%s)", self.path)
            self.remove()
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            raise PidfileLocked(
                f"Pidfile ({self.path}) already exists.\nSeems we're already running? "
                f"(pid: {self.read_pid()})") from None
        except OSError as exc:
            raise ConfigurationError(f"cannot create the pidfile {self.path}: "
                                     f"{exc.strerror}") from None
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{os.getpid()}\n")

    def check(self) -> None:
        """What ``acquire`` would refuse, without writing (before detaching)."""
        if not self.is_stale() and self.read_pid() is not None:
            raise PidfileLocked(
                f"Pidfile ({self.path}) already exists.\nSeems we're already running? "
                f"(pid: {self.read_pid()})")

    def release(self) -> None:
        """Remove the file if it still holds our pid."""
        try:
            if self.read_pid() == os.getpid():
                self.remove()
        except ValueError:
            pass

    def remove(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def parse_uid(value: str) -> int:
    """A user name or number -> uid."""
    if value.isdigit():
        return int(value)
    import pwd

    try:
        return pwd.getpwnam(value).pw_uid
    except KeyError:
        raise ConfigurationError(f"--uid: no user named {value!r}") from None


def parse_gid(value: str) -> int:
    """A group name or number -> gid."""
    if value.isdigit():
        return int(value)
    import grp

    try:
        return grp.getgrnam(value).gr_gid
    except KeyError:
        raise ConfigurationError(f"--gid: no group named {value!r}") from None


def drop_privileges(uid: str | None, gid: str | None) -> None:
    """Become ``uid``/``gid`` (group first, then user, with the user's groups)."""
    target_uid = parse_uid(uid) if uid else None
    target_gid = parse_gid(gid) if gid else None
    if target_uid is None and target_gid is None:
        return
    if os.geteuid() != 0:
        if target_uid not in (None, os.geteuid()) or target_gid not in (None, os.getegid()):
            raise ConfigurationError(
                f"--uid/--gid need root: this process runs as uid {os.geteuid()}; start "
                f"it as root or leave them out")
        return
    if target_gid is None and target_uid is not None:
        import pwd

        target_gid = pwd.getpwuid(target_uid).pw_gid
    if target_gid is not None:
        os.setgid(target_gid)
    if target_uid is not None:
        import pwd

        try:
            os.initgroups(pwd.getpwuid(target_uid).pw_name, target_gid or 0)
        except KeyError:
            os.setgroups([])
        os.setuid(target_uid)


def parse_umask(value: str | None) -> int | None:
    """'0o22', '022' (octal with a leading zero, as Celery) or '18'."""
    if value is None or value == "":
        return None
    try:
        if value.startswith("0"):
            return int(value.removeprefix("0o").removeprefix("0") or "0", 8)
        return int(value)
    except ValueError:
        raise ConfigurationError(f"--umask: not a number: {value!r} (e.g. --umask=022)"
                                 ) from None


def check_logfile(path: str | None) -> None:
    """Open the log file once, so a path we cannot write fails before detaching."""
    if not path:
        return
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        open(path, "a").close()
    except OSError as exc:
        raise ConfigurationError(f"cannot write the log file {path}: {exc.strerror}"
                                 ) from None


def detach(argv: Sequence[str], *, logfile: str | None, pidfile: str | None,
           uid: str | None, gid: str | None, umask: str | None,
           workdir: str | None) -> None:
    """Start ``python argv...`` as a daemon (see the module docstring). Returns in the
    calling process once the daemon is on its way; the daemon never returns."""
    workdir = os.path.abspath(workdir or os.getcwd())
    mask = parse_umask(umask)
    check_logfile(logfile)
    if pidfile:
        Pidfile(pidfile).check()
    drop_privileges(uid, gid)
    sys.stdout.flush()
    sys.stderr.flush()
    first = os.fork()
    if first > 0:
        os.waitpid(first, 0)  # the first child exits at once: no zombie left behind
        return
    try:
        os.setsid()
        if os.fork() > 0:
            os._exit(0)
        os.chdir(workdir)
        if mask is not None:
            os.umask(mask)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.closerange(3, _max_fd())
        executable = sys.executable
        os.execv(executable, [executable, *argv])
    except BaseException as exc:  # nowhere to report but the log file
        if logfile:
            with open(logfile, "a") as fh:
                fh.write(f"celeriac: cannot start the detached worker: {exc}\n")
    os._exit(1)


def _max_fd() -> int:
    try:
        return int(os.sysconf("SC_OPEN_MAX"))
    except (ValueError, OSError):
        return 1024


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


__all__ = ["Pidfile", "PidfileLocked", "check_logfile", "detach", "drop_privileges",
           "is_alive", "parse_gid", "parse_uid", "parse_umask"]
