"""What every part of the store shares: the SQLAlchemy metadata its tables live on, the
store's error and the clock it stamps rows with."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import MetaData

metadata = MetaData()
"""The tables of the store (:mod:`pipeline.store`, :mod:`pipeline.decisions`,
:mod:`pipeline.lease`)."""


class StoreError(RuntimeError):
    """A request the store cannot honour without losing or mixing data."""


def utc_now() -> datetime:
    """Now, in UTC."""
    return datetime.now(UTC)
