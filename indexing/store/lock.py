"""The embedded backend's lock: ``fcntl.flock`` on a file beside the versions."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from typing import IO

from indexing.clock import utcnow
from indexing.store.base import IndexLockedError, StoreLock


class FileLock(StoreLock):
    """An exclusive, cross-process writer lock on a file, with a clear message when taken.

    ``fcntl.flock`` is released by the kernel when the holder dies, so a lock left by a killed
    process (``kill -9``) is recovered automatically; the file's text only says who held it.
    """

    def __init__(self, path: Path, wait: float = 0.0, purpose: str = "write") -> None:
        self.path = path
        self.wait = wait
        self.purpose = purpose
        self._handle: IO[str] | None = None

    def __enter__(self) -> FileLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="utf-8")
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    holder = handle.read().strip() or "another process"
                    handle.close()
                    raise IndexLockedError(
                        f"the index at {self.path.parent} is being updated by {holder}; "
                        "wait for it to finish (or pass --wait SECONDS)",
                        holder,
                    ) from None
                time.sleep(min(0.2, max(0.01, deadline - time.monotonic())))
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} ({self.purpose}, since {utcnow()})")
        handle.flush()
        self._handle = handle
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.seek(0)
            self._handle.truncate()
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None
