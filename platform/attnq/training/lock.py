"""One training process per run folder: an exclusive lock file held while a run trains.

Two reports (or a report and a retried Ray task) pointed at one runs folder must never train the
same run at once: the second would overwrite the first's checkpoints. ``flock`` locks end with the
process that holds them, so a killed run never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from attnq.errors import AttnqError

LOCK_FILE = ".train.lock"


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run folder's lock, or fail at once naming the process that holds it."""
    path = run_dir / LOCK_FILE
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(handle, 64, 0).decode("ascii", "replace").strip() or "another process"
            raise AttnqError(
                f"{run_dir} is being trained by {holder}; fix: wait for it to finish, "
                "or stop it (it resumes from its last checkpoint)"
            ) from None
        os.ftruncate(handle, 0)
        os.pwrite(handle, f"pid {os.getpid()}".encode("ascii"), 0)
        yield
    finally:
        os.close(handle)
