"""Timestamps as the index, the history and the manifests write them."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> str:
    """Current UTC time, ISO 8601 with seconds."""
    return datetime.now(UTC).isoformat(timespec="seconds")
