"""The unique key store suite: one holder per key, freed by its holder or its TTL."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid

from taskq.abc.unique_store import UniqueKeyStore
from taskq_conformance.instances import NewUniqueStore


def fresh_key() -> str:
    """A key no other check (or run against the same store) uses."""
    return f"conformance-{uuid.uuid4().hex}"


async def test_it_is_a_unique_key_store(taskq_new_unique_store: NewUniqueStore) -> None:
    async with taskq_new_unique_store() as store:
        assert isinstance(store, UniqueKeyStore)


async def test_a_held_key_names_its_holder(taskq_new_unique_store: NewUniqueStore) -> None:
    key = fresh_key()
    async with taskq_new_unique_store() as store:
        assert await store.claim(key, "first", 60) is None
        assert await store.claim(key, "second", 60) == "first"
        assert await store.claim(fresh_key(), "second", 60) is None  # keys are apart


async def test_a_holder_claiming_its_key_again_has_it(
    taskq_new_unique_store: NewUniqueStore,
) -> None:
    # a claim retried after its answer was lost finds the key held by its own task
    key = fresh_key()
    async with taskq_new_unique_store() as store:
        assert await store.claim(key, "first", 60) is None
        assert await store.claim(key, "first", 60) is None, "its own key named as another's"
        assert await store.claim(key, "second", 60) == "first"


async def test_long_keys_are_held_apart_and_once(taskq_new_unique_store: NewUniqueStore) -> None:
    # keys of a megabyte that differ only at their end (a store may keep a digest of them)
    start = fresh_key() + "x" * 1_000_000
    first, second = start + "1", start + "2"
    async with taskq_new_unique_store() as store:
        assert await store.claim(first, "first", 60) is None
        assert await store.claim(second, "second", 60) is None, "two long keys were one"
        assert await store.claim(first, "third", 60) == "first", "a long key was held twice"
        await store.release(first, "first")
        assert await store.claim(first, "third", 60) is None, "a long key was not freed"
        assert await store.claim(second, "fourth", 60) == "second"


async def test_a_key_like_a_digest_is_apart_from_a_long_key(
    taskq_new_unique_store: NewUniqueStore,
) -> None:
    # a store keeping a long key as a digest must keep a short key of that form apart
    long_key = fresh_key() + "x" * 1_000
    digest_like = "sha256:" + hashlib.sha256(long_key.encode()).hexdigest()
    async with taskq_new_unique_store() as store:
        assert await store.claim(long_key, "first", 60) is None
        assert await store.claim(digest_like, "second", 60) is None, "two keys were one"


async def test_only_the_holder_frees_its_key(taskq_new_unique_store: NewUniqueStore) -> None:
    key = fresh_key()
    async with taskq_new_unique_store() as store:
        assert await store.claim(key, "first", 60) is None
        await store.release(key, "second")
        assert await store.claim(key, "second", 60) == "first", "a non-holder freed the key"
        await store.release(key, "first")
        assert await store.claim(key, "second", 60) is None


async def test_a_key_frees_itself_after_its_ttl(taskq_new_unique_store: NewUniqueStore) -> None:
    key = fresh_key()
    async with taskq_new_unique_store() as store:
        assert await store.claim(key, "first", 0.2) is None
        assert await store.claim(key, "second", 60) == "first"
        deadline = time.monotonic() + 10
        while await store.claim(key, "second", 60) is not None:
            assert time.monotonic() < deadline, "the key was still held 10 s after its TTL"
            await asyncio.sleep(0.05)
        assert await store.claim(key, "third", 60) == "second"


async def test_of_concurrent_claims_exactly_one_wins(
    taskq_new_unique_store: NewUniqueStore,
) -> None:
    key = fresh_key()
    async with taskq_new_unique_store() as store:
        holders = await asyncio.gather(*(store.claim(key, f"t{n}", 60) for n in range(40)))
        winners = [f"t{n}" for n, holder in enumerate(holders) if holder is None]
        assert len(winners) == 1, f"{len(winners)} claims won"
        assert all(holder in (None, winners[0]) for holder in holders)
