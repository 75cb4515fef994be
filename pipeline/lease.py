"""One process computes a campaign at a time, across machines: a lease in the store, renewed
by a heartbeat while the campaign runs (the file lock of :mod:`pipeline.home` covers one
machine only)."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from pipeline.store import Store

HEARTBEAT_S = 30.0
"""How often a running campaign renews its lease."""
STALE_AFTER_S = 300.0
"""A lease not renewed for this long belongs to a dead process and is taken over."""


def holder_name() -> str:
    """This process, as a lease holder: host, pid and a random tag."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@contextmanager
def campaign_lease(store: Store, campaign: str, heartbeat_s: float = HEARTBEAT_S,
                   stale_after_s: float = STALE_AFTER_S) -> Iterator[str]:
    """Holds the campaign's lease while the block runs; yields the holder's name.

    Raises:
        pipeline.store.StoreError: another live process holds it (naming it).
    """
    holder = holder_name()
    store.acquire_lease(campaign, holder, stale_after_s)
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
