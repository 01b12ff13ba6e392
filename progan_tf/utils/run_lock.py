"""The run directory's lock (`RunLock`): one training run at a time writes a run directory.

An OS lock (`flock`) on `<run dir>/_run.lock`, which holds "pid host" of the holder. The lock
belongs to the open file, so it ends with the process however the process ends (kill -9
included) and never goes stale; the file itself stays (removing it would let two processes
lock two different files of the same name). A second `acquire` of the same directory is
refused, also from the same process (flock locks an open file description, not a process).
Where the file system cannot lock, `acquire` returns a RunLock that holds nothing and says why.
"""

import errno
import fcntl
import os
import socket

LOCK_FILE = "_run.lock"

# flock's answer when another open file holds the lock.
_HELD = (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES)


class RunLockError(RuntimeError):
    """The run directory is locked by another run; the message names it, the pid and host."""


class RunLock:
    """A held lock on a run directory (`acquire` makes one); `release` ends it.

    path: the lock file; warning: None while the lock is held, else the one-line reason why
    nothing is locked (the file system does not support locks).
    """

    def __init__(self, path, fd, warning=None):
        self.path = path
        self._fd = fd
        self.warning = warning

    @property
    def held(self):
        return self._fd is not None

    def release(self):
        """Unlocks (idempotent). The holder line is emptied first: the file names no one."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass  # a read-only or full file system: the line stays, the lock still ends
        finally:
            os.close(fd)  # closing the last descriptor of the open file releases the flock

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def holder_line():
    """"<pid> <host>" of this process, as the lock file stores it."""
    return f"{os.getpid()} {socket.gethostname()}"


def read_holder(path):
    """(pid, host) stored in the lock file at `path`; (None, None) when absent or empty."""
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            parts = file.read(4096).split()
    except OSError:
        return None, None
    if len(parts) < 2 or not parts[0].isdigit():
        return None, None
    return int(parts[0]), parts[1]


def acquire(run_dir):
    """Locks `run_dir` for this process; returns a RunLock (release it in a `finally`).

    Raises RunLockError naming the directory and the holder's pid and host when another run
    (or this process, through an earlier RunLock) holds it; OSError when the lock file cannot be
    created. A file system without locks gives a RunLock whose `warning` says so.
    """
    path = os.path.join(os.fspath(run_dir), LOCK_FILE)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        os.close(fd)
        if error.errno in _HELD:
            raise RunLockError(_refusal(run_dir, path)) from None
        return RunLock(path, None, warning=(
            f"cannot lock {path} ({error.strerror or error}): this file system does not support "
            f"file locks, so nothing stops a second run from writing {run_dir} at the same time"))
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, (holder_line() + "\n").encode("utf-8"), 0)
    except OSError:
        pass  # disk full: the lock is held all the same, only its holder line is missing
    return RunLock(path, fd)


def _refusal(run_dir, path):
    pid, host = read_holder(path)
    if pid is None:
        holder = f"another process (its pid and host are not yet written in {path})"
    elif pid == os.getpid() and host == socket.gethostname():
        holder = f"this process (pid {pid} on host {host}, through an earlier lock)"
    else:
        holder = f"pid {pid} on host {host}"
    return (f"{run_dir} is in use by another training run: {holder} holds its lock {LOCK_FILE}; "
            f"stopped without writing anything. Wait for that run to end (or stop it) and "
            f"try again")
