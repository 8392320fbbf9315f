"""One run per folder: an exclusive lock on `<run folder>/.lock`, held while stages run.

The lock is an OS file lock (`fcntl.flock`), so the kernel drops it when its holder
dies, however it dies: a folder whose lock file names a process that is gone is taken
over (and the log says so). The file records the holder (host, PID, since when) for the
message a refused process prints. Under torchrun rank 0 takes the lock and tells the
other ranks whether it got it, so the ranks of one run share it. `--status` and
`--dry-run` only read, and take no lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from datetime import datetime, timezone
from pathlib import Path

from pipeline.errors import PipelineError
from pipeline.log import get_logger

LOCK_FILE = ".lock"


class RunFolderBusy(PipelineError):
    """Another process holds the run folder."""


class RunLock:
    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock at once or raise RunFolderBusy naming the holder."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = describe_holder(_read_holder(fd))
            os.close(fd)
            raise RunFolderBusy(
                f"the run folder {self.path.parent} is in use by {holder}. Wait for that run to finish, or use "
                f"another --work-dir. (If no such process exists, the lock is released with it: run again.)"
            ) from None
        previous = _read_holder(fd)
        if previous and previous.get("pid") is not None:
            get_logger().info("run lock: taking over %s, left by %s (no longer holding it)", self.path,
                              describe_holder(previous))
        record = {"host": socket.gethostname(), "pid": os.getpid(),
                  "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        self._fd = fd

    def holder(self) -> dict | None:
        """Who holds the lock now ({host, pid, since}), or None when nobody does; takes
        nothing (a shared probe, released at once), so --status can say 'running'."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(fd) or {}
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)  # a clean exit leaves no holder behind
        except OSError:
            pass
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _read_holder(fd: int) -> dict:
    try:
        data = os.pread(fd, 4096, 0)
        return json.loads(data) if data.strip() else {}
    except (OSError, ValueError):
        return {}


def describe_holder(holder: dict) -> str:
    if not holder:
        return "another process (it has not recorded itself yet)"
    return f"process {holder.get('pid')} on host {holder.get('host')} (since {holder.get('since')})"
