"""One process computes a campaign at a time, across machines: the lease in the store."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from pipeline.lease import campaign_lease
from pipeline.store import Store, StoreError


@pytest.fixture
def store(store_url: str) -> Store:
    """An empty store, on SQLite and on PostgreSQL (the lease must hold on both)."""
    return Store(store_url)


def test_a_second_holder_is_refused_until_the_first_releases(store: Store) -> None:
    store.acquire_lease("c", "host-a:1:x")
    store.acquire_lease("c", "host-a:1:x")  # the holder itself may take it again
    with pytest.raises(StoreError, match=r"campaign 'c' is being computed by host-a:1:x"):
        store.acquire_lease("c", "host-b:2:y")
    assert store.renew_lease("c", "host-a:1:x") and not store.renew_lease("c", "host-b:2:y")
    store.release_lease("c", "host-b:2:y")  # not its lease: nothing happens
    with pytest.raises(StoreError):
        store.acquire_lease("c", "host-b:2:y")
    store.release_lease("c", "host-a:1:x")
    store.acquire_lease("c", "host-b:2:y")


def test_a_lease_nobody_renews_is_taken_over(store: Store) -> None:
    store.acquire_lease("c", "dead:1:x")
    time.sleep(0.3)
    store.acquire_lease("c", "alive:2:y", stale_after_s=0.2)
    assert not store.renew_lease("c", "dead:1:x")  # the dead holder lost it


def test_the_context_renews_and_releases(store: Store, tmp_path: Path) -> None:
    other = Store(store.url)  # another process's connection to the same store
    with campaign_lease(store, "c", heartbeat_s=0.05) as holder:
        time.sleep(0.2)
        with pytest.raises(StoreError, match=f"computed by {holder}"):
            other.acquire_lease("c", "other:9:z", stale_after_s=0.15)  # renewed: not stale
    other.acquire_lease("c", "other:9:z")  # released at the end of the block


def test_concurrent_acquisitions_give_one_winner(store: Store) -> None:
    winners, errors = [], []

    def take(k: int) -> None:
        try:
            Store(store.url).acquire_lease("race", f"h:{k}:x")
            winners.append(k)
        except StoreError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=take, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1 and len(errors) == 5


def test_a_killed_process_of_this_machine_is_replaced_at_once(store: Store) -> None:
    import socket
    import subprocess

    from pipeline.lease import holder_is_dead

    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = f"{socket.gethostname()}:{gone.pid}:x"
    store.acquire_lease("c", dead)
    assert holder_is_dead(dead) and not holder_is_dead(f"{socket.gethostname()}:1:x")
    assert not holder_is_dead(f"another-machine:{gone.pid}:x")  # only its lease going stale
    with campaign_lease(store, "c") as holder:  # taken over without waiting
        assert holder.startswith(socket.gethostname())
