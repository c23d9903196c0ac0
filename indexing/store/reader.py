"""Serving the published version to searches, switching to newer ones as they are published."""

from __future__ import annotations

import threading
import time

from indexing.settings import Settings
from indexing.store.base import IndexCorruptError, PublishedIndex, not_published
from indexing.store.factory import open_store


class IndexReader:
    """Serves the published version and switches to a newer one as soon as it is published.

    Cheap to call on every request: it reads the small CURRENT pointer and reloads only when
    the name changed. A version removed between reading the pointer and loading it (a cleanup
    racing a slow reader) is retried with the newer name.
    """

    def __init__(self, settings: Settings) -> None:
        self.store = open_store(settings)
        self._current: PublishedIndex | None = None
        self._lock = threading.Lock()

    def get(self) -> PublishedIndex:
        """The published version, reloaded if a newer one exists.

        Raises:
            IndexNotFoundError: nothing has been published yet.
        """
        for attempt in range(5):
            version = self.store.current_version()
            if version is None:
                raise not_published(self.store.where)
            current = self._current
            if current is not None and current.version == version and not current.broken:
                return current
            with self._lock:
                current = self._current
                if current is not None and current.version == version and not current.broken:
                    return current
                try:
                    fresh = self.store.open_version(version)
                except (FileNotFoundError, IndexCorruptError):
                    if attempt == 4:
                        raise
                    time.sleep(0.05 * (attempt + 1))
                    continue
                self._current = fresh  # the old handle stays valid for searches in flight
                return fresh
        raise IndexCorruptError(f"could not open the published index in {self.store.where}")
