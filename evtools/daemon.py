"""Running as a well-behaved Unix daemon: pidfile lock, privileges, and an honest start-up.

Built on python-daemon's :class:`daemon.DaemonContext` (double fork, new session, umask,
working directory, uid/gid, closed descriptors, redirected streams). Around it:

* the pidfile is locked with ``flock`` *before* detaching, so a second instance is refused at
  once, and a pidfile whose process is dead is simply reclaimed (its lock died with it);
* the pidfile and the log file are opened (and given to the target user) before privileges
  are dropped, and kept open across the forks;
* the command that was run waits until the daemon says it is running, and exits non-zero with
  the daemon's reason when it could not start.
"""

from __future__ import annotations

import errno
import fcntl
import grp
import logging
import os
import pwd
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import ConfigurationError, EvtoolsError

__all__ = ("PidFile", "DaemonOptions", "parse_uid", "parse_gid", "parse_umask", "detach",
           "PidfileLocked")

logger = logging.getLogger(__name__)

#: How long the launching command waits for the daemon to report that it runs.
STARTUP_TIMEOUT = 60.0


class PidfileLocked(EvtoolsError):
    """Another process holds the pidfile."""


def parse_uid(value: str | None) -> int | None:
    """Return the uid of a user name or number."""
    if value is None:
        return None
    try:
        return int(value) if value.isdigit() else pwd.getpwnam(value).pw_uid
    except KeyError:
        raise ConfigurationError(f"unknown user {value!r} for --uid") from None


def parse_gid(value: str | None, uid: int | None = None) -> int | None:
    """Return the gid of a group name or number; with only a uid, that user's primary group."""
    if value is None:
        if uid is None:
            return None
        try:
            return pwd.getpwuid(uid).pw_gid
        except KeyError:
            return None
    try:
        return int(value) if value.isdigit() else grp.getgrnam(value).gr_gid
    except KeyError:
        raise ConfigurationError(f"unknown group {value!r} for --gid") from None


def parse_umask(value: str | int | None) -> int:
    """Return a umask given in octal (``022``, ``0o22``); Celery's default is 0."""
    if value is None or value == "":
        return 0
    if isinstance(value, int):
        return value
    try:
        mask = int(value, 8)
    except ValueError:
        raise ConfigurationError(f"invalid --umask {value!r}: give it in octal, like 022") from None
    if not 0 <= mask <= 0o777:
        raise ConfigurationError(f"invalid --umask {value!r}: it must be between 0 and 0777")
    return mask


class PidFile:
    """A pidfile held under an exclusive ``flock`` for as long as the process lives.

    :meth:`acquire` refuses (:class:`PidfileLocked`, naming the pid) while another process
    holds it; a leftover file whose process died holds no lock and is reclaimed. Used as
    ``DaemonContext(pidfile=...)``: entering writes the current pid, exiting removes the file.
    """

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self.fd: int | None = None
        #: The pid found in a stale file that was reclaimed, if any.
        self.reclaimed_pid: str | None = None

    def acquire(self) -> PidFile:
        """Open and lock the pidfile, or raise saying who holds it."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise EvtoolsError(f"cannot open pidfile {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise PidfileLocked(f"already running: pidfile {self.path} is held by pid "
                                    f"{holder}") from None
            raise
        previous = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
        if previous:
            self.reclaimed_pid = previous
        self.fd = fd
        return self

    def chown(self, uid: int | None, gid: int | None) -> None:
        """Give the file to the user the daemon will run as."""
        if self.fd is not None and (uid is not None or gid is not None):
            os.fchown(self.fd, -1 if uid is None else uid, -1 if gid is None else gid)

    def write_pid(self) -> None:
        """Record this process's pid in the file."""
        assert self.fd is not None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)
        os.fsync(self.fd)

    def release(self) -> None:
        """Remove the file (or empty it when the directory forbids it) and drop the lock."""
        if self.fd is None:
            return
        try:
            os.unlink(self.path)
        except OSError:
            os.ftruncate(self.fd, 0)  # privileges were dropped: at least leave no pid behind
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> PidFile:
        if self.fd is None:
            self.acquire()
        self.write_pid()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.release()


@dataclass(slots=True)
class DaemonOptions:
    """What ``--detach`` and its companions ask for."""

    pidfile: str | None = None
    logfile: str | None = None
    uid: int | None = None
    gid: int | None = None
    umask: int = 0
    workdir: str = "/"


def _report(fd: int, message: str) -> None:
    try:
        os.write(fd, message.encode("utf-8", "replace"))
    except OSError:
        pass


def _wait_for_daemon(read_fd: int, child: int) -> None:
    """In the launching process: wait for the daemon's word; raise with its reason if it failed."""
    import select
    chunks = []
    deadline_left = STARTUP_TIMEOUT
    while deadline_left > 0:
        ready, _, _ = select.select([read_fd], [], [], 0.5)
        deadline_left -= 0.5
        if not ready:
            continue
        chunk = os.read(read_fd, 4096)
        if not chunk:
            break
        chunks.append(chunk)
        if chunk.endswith(b"\n"):  # one whole message: the daemon's word is in
            break
    os.close(read_fd)
    try:
        os.waitpid(child, 0)
    except ChildProcessError:
        pass
    message = b"".join(chunks).decode("utf-8", "replace").strip()
    if message.startswith("ok"):
        return
    if message.startswith("error:"):
        code, _, reason = message[len("error:"):].partition(":")
        error = EvtoolsError(reason.strip())
        error.exit_code = int(code) if code.isdigit() else 1
        raise error
    raise EvtoolsError("the daemon exited during start-up without saying why; see its log file")


def detach(options: DaemonOptions, run: Callable[[Callable[[], None]], int],
           preserve: list[int], log_stream: Any = None,
           signal_map: dict[int, Any] | None = None) -> int:
    """Run ``run(started)`` as a daemon; return (in the launching process) once it runs.

    ``run`` must call ``started()`` once it is really running; until then the launching
    process waits, and any exception ``run`` raises is reported there as one line.
    """
    import daemon  # python-daemon

    pidfile = PidFile(options.pidfile).acquire() if options.pidfile else None
    if pidfile is not None:
        pidfile.chown(options.uid, options.gid)
    read_fd, write_fd = os.pipe()
    child = os.fork()
    if child:
        os.close(write_fd)
        if pidfile is not None and pidfile.fd is not None:
            os.close(pidfile.fd)  # the daemon holds the lock now
        _wait_for_daemon(read_fd, child)
        return 0
    # The intermediate child: python-daemon forks twice more and only the daemon returns.
    os.close(read_fd)
    status = 1
    try:
        context = daemon.DaemonContext(
            detach_process=True, working_directory=options.workdir, umask=options.umask,
            uid=options.uid, gid=options.gid, pidfile=pidfile,
            files_preserve=[write_fd, *preserve, *([pidfile.fd] if pidfile else [])],
            stdout=log_stream, stderr=log_stream, signal_map=signal_map or {})
        with context:
            if pidfile is not None and pidfile.reclaimed_pid:
                logger.warning("reclaimed stale pidfile %s (pid %s was not running)",
                               pidfile.path, pidfile.reclaimed_pid)

            reported = []

            def started() -> None:
                if not reported:
                    _report(write_fd, f"ok {os.getpid()}\n")
                    reported.append(True)

            try:
                status = run(started)
            except EvtoolsError as exc:
                if not reported:
                    _report(write_fd, f"error:{exc.exit_code}: {exc}\n")
                logger.error("%s", exc)
                status = exc.exit_code
            except BaseException as exc:
                if not reported:
                    _report(write_fd, f"error:1: {type(exc).__name__}: {exc}\n")
                logger.exception("the daemon failed")
                status = 1
    except BaseException as exc:  # before or while detaching: tell the launcher
        _report(write_fd, f"error:1: could not daemonize: {exc}\n")
    finally:
        os._exit(status)
    return status  # pragma: no cover - never reached
