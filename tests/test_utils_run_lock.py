"""The run directory's lock: the holder's pid and host in the file, a second holder refused (also
in the same process and from another process), no stale lock after kill -9, release that
empties the file, and a file system without locks (a warning, no lock)."""

import errno
import fcntl
import os
import signal
import socket
import subprocess
import sys
import textwrap

import pytest

from progan_tf.utils import run_lock

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOST = socket.gethostname()

# Locks argv[1], prints "locked" and waits for stdin to close (or for SIGKILL).
HOLDER = textwrap.dedent("""
    import sys
    from progan_tf.utils import run_lock
    lock = run_lock.acquire(sys.argv[1])
    print("locked", flush=True)
    sys.stdin.read()
    lock.release()
""")

# Tries to lock argv[1]; prints "locked" or the refusal.
CONTENDER = textwrap.dedent("""
    import sys
    from progan_tf.utils import run_lock
    try:
        run_lock.acquire(sys.argv[1]).release()
        print("locked")
    except run_lock.RunLockError as error:
        print(error)
""")


def start_holder(run_dir):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], cwd=REPO,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def contend(run_dir):
    return subprocess.run([sys.executable, "-c", CONTENDER, str(run_dir)], cwd=REPO,
                          capture_output=True, text=True, timeout=60).stdout.strip()


def test_lock_file_names_the_holder_and_a_second_lock_in_the_same_process_is_refused(tmp_path):
    lock = run_lock.acquire(tmp_path)
    try:
        path = tmp_path / run_lock.LOCK_FILE
        assert path.read_text() == f"{os.getpid()} {HOST}\n"
        assert run_lock.read_holder(path) == (os.getpid(), HOST)
        with pytest.raises(run_lock.RunLockError) as refused:
            run_lock.acquire(tmp_path)
        message = str(refused.value)
        assert "\n" not in message
        assert message.startswith(
            f"{tmp_path} is in use by another training run: this process (pid {os.getpid()} on "
            f"host {HOST}, through an earlier lock) holds its lock {run_lock.LOCK_FILE};")
    finally:
        lock.release()
    assert path.read_text() == ""  # released: the file names no one
    lock.release()  # idempotent
    with run_lock.acquire(tmp_path) as again:  # free again
        assert again.held and path.read_text() == f"{os.getpid()} {HOST}\n"
    assert not again.held


def test_another_process_is_refused_while_the_holder_lives_and_locks_after_it_ends(tmp_path):
    holder = start_holder(tmp_path)
    try:
        assert contend(tmp_path) == (
            f"{tmp_path} is in use by another training run: pid {holder.pid} on host {HOST} "
            f"holds its lock {run_lock.LOCK_FILE}; stopped without writing anything. Wait for "
            f"that run to end (or stop it) and try again")
        with pytest.raises(run_lock.RunLockError, match=f"pid {holder.pid} on host"):
            run_lock.acquire(tmp_path)  # this process too
    finally:
        holder.communicate("", timeout=30)  # stdin closed: the holder releases and exits
    assert holder.returncode == 0
    assert contend(tmp_path) == "locked"


def test_kill_9_leaves_no_stale_lock(tmp_path):
    holder = start_holder(tmp_path)
    holder.send_signal(signal.SIGKILL)
    holder.communicate(timeout=30)
    # The file still names the dead holder, but its lock ended with the process.
    assert run_lock.read_holder(tmp_path / run_lock.LOCK_FILE) == (holder.pid, HOST)
    lock = run_lock.acquire(tmp_path)
    try:
        assert lock.held and lock.warning is None
        assert run_lock.read_holder(tmp_path / run_lock.LOCK_FILE) == (os.getpid(), HOST)
    finally:
        lock.release()


@pytest.mark.parametrize("code", [errno.ENOLCK, errno.EOPNOTSUPP])
def test_a_file_system_without_locks_gives_a_warning_and_no_lock(tmp_path, monkeypatch, code):
    def unsupported(fd, operation):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(fcntl, "flock", unsupported)
    lock = run_lock.acquire(tmp_path)
    assert not lock.held
    assert lock.warning == (
        f"cannot lock {tmp_path / run_lock.LOCK_FILE} ({os.strerror(code)}): this file system "
        f"does not support file locks, so nothing stops a second run from writing {tmp_path} "
        f"at the same time")
    lock.release()  # nothing to release


def test_a_directory_where_the_lock_file_cannot_be_created_raises_oserror(tmp_path):
    with pytest.raises(OSError):
        run_lock.acquire(tmp_path / "missing")
