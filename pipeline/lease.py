"""One process computes a campaign at a time, across machines: a lease in the store, renewed
by a heartbeat while the campaign runs (the file lock of :mod:`pipeline.home` covers one
machine only)."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from sqlalchemy import Column, DateTime, String, Table, select

from pipeline.schema import StoreError, metadata, utc_now

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from pipeline.store import Store

HEARTBEAT_S = 30.0
"""How often a running campaign renews its lease."""
STALE_AFTER_S = 300.0
"""A lease not renewed for this long belongs to a dead process and is taken over."""


leases_table = Table(
    "campaign_leases",
    metadata,
    Column("campaign", String(64), primary_key=True),
    Column("holder", String(256), nullable=False),
    Column("acquired_at", DateTime(timezone=True), nullable=False),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False),
)
"""Which process computes a campaign now, across machines (see :meth:`Store.acquire_lease`)."""


class LeaseMixin:
    """The store's lease methods (:class:`pipeline.store.Store` has them)."""

    engine: Engine

    def acquire_lease(self, campaign: str, holder: str, stale_after_s: float = 300.0,
                      is_dead: Callable[[str], bool] | None = None) -> None:
        """Takes the campaign's lease for ``holder``; a lease whose holder stopped renewing it
        for ``stale_after_s`` (its machine died), or that ``is_dead`` says is gone (a process of
        this machine that was killed), is taken over.

        Raises:
            StoreError: another holder has it (the message names it and since when).
        """
        from sqlalchemy.exc import IntegrityError

        now = utc_now()
        try:
            with self.engine.begin() as conn:
                row = conn.execute(select(leases_table).where(
                    leases_table.c.campaign == campaign)).mappings().first()
                if row is None:
                    conn.execute(leases_table.insert().values(
                        campaign=campaign, holder=holder, acquired_at=now, heartbeat_at=now))
                    return
                beat = row["heartbeat_at"]
                beat = beat if beat.tzinfo else beat.replace(tzinfo=now.tzinfo)
                alive = not (is_dead is not None and is_dead(row["holder"]))
                if row["holder"] != holder and alive and \
                        (now - beat).total_seconds() < stale_after_s:
                    raise StoreError(
                        f"campaign {campaign!r} is being computed by {row['holder']} (since "
                        f"{row['acquired_at']:%Y-%m-%d %H:%M:%S} UTC, last sign of life "
                        f"{(now - beat).total_seconds():.0f} s ago); wait for it or stop it")
                conn.execute(leases_table.update().where(
                    leases_table.c.campaign == campaign,
                    leases_table.c.holder == row["holder"]).values(
                    holder=holder, acquired_at=now, heartbeat_at=now))
        except IntegrityError:  # another process inserted it first
            raise StoreError(f"campaign {campaign!r} was just taken by another process") from None

    def renew_lease(self, campaign: str, holder: str) -> bool:
        """Marks the holder alive; False when it no longer holds the lease."""
        with self.engine.begin() as conn:
            done = conn.execute(leases_table.update().where(
                leases_table.c.campaign == campaign,
                leases_table.c.holder == holder).values(heartbeat_at=utc_now()))
        return bool(done.rowcount)

    def release_lease(self, campaign: str, holder: str) -> None:
        """Gives the lease up (only the holder's own)."""
        with self.engine.begin() as conn:
            conn.execute(leases_table.delete().where(leases_table.c.campaign == campaign,
                                                     leases_table.c.holder == holder))


def holder_name() -> str:
    """This process, as a lease holder: host, pid and a random tag."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def holder_is_dead(holder: str) -> bool:
    """Whether a holder is a process of this machine that no longer runs (killed, kill -9
    included); a holder on another machine is never declared dead here (its lease goes stale
    instead)."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


@contextmanager
def campaign_lease(store: Store, campaign: str, heartbeat_s: float = HEARTBEAT_S,
                   stale_after_s: float = STALE_AFTER_S) -> Iterator[str]:
    """Holds the campaign's lease while the block runs; yields the holder's name.

    Raises:
        pipeline.store.StoreError: another live process holds it (naming it).
    """
    holder = holder_name()
    store.acquire_lease(campaign, holder, stale_after_s, is_dead=holder_is_dead)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(heartbeat_s):
            store.renew_lease(campaign, holder)

    thread = threading.Thread(target=beat, name=f"lease-{campaign}", daemon=True)
    thread.start()
    try:
        yield holder
    finally:
        stop.set()
        thread.join(timeout=5)
        store.release_lease(campaign, holder)
