"""Slow readers against a live server: a download holds no database connection while its client
is slow to read, and a project streams at most DOWNLOADS_PER_PROJECT downloads at once."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import httpx
import pytest
from redis import Redis
from sqlalchemy import text

from app.kernel.config import Settings
from app.kernel.errors import TooManyRequestsError
from app.services.downloads import DownloadSlot, take_download_slot
from benchmarks.download import store_pairs as store_many_pairs
from tests.api.stored_pairs import store_pairs, tricky_specs
from tests.conftest import api_key, bearer, project_id
from tests.live import free_port, live_api

BIG = 12_000
"""Pairs of the big batch: ~24 MB of JSONL, more than the sockets between client and server
hold, so a client that stops reading keeps its download waiting."""


@pytest.fixture
def big_batch(session_factory) -> str:  # type: ignore[no-untyped-def]
    with session_factory.begin() as session:
        return store_many_pairs(session, project_id=project_id(session_factory), pairs=BIG)


@contextmanager
def slow_reader(url: str, key: str, path: str) -> Iterator[Iterator[bytes]]:
    """A download whose client read its first bytes and then stopped; the rest on demand."""
    with (
        httpx.Client(base_url=url, headers=bearer(key), timeout=30) as client,
        client.stream("GET", path) as response,
    ):
        assert response.status_code == 200, response.read()
        pieces = response.iter_bytes()
        first = next(pieces)
        yield itertools.chain([first], pieces)


def idle_transactions(session_factory) -> int:  # type: ignore[no-untyped-def]
    """Connections to the test database that sit in an open transaction doing nothing."""
    with session_factory() as session:
        return session.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND state LIKE 'idle in transaction%'"
            )
        )


def test_slow_readers_hold_no_connection_and_every_project_still_answers_fast(
    settings: Settings,
    redis: Redis,
    session_factory,  # type: ignore[no-untyped-def]
    big_batch: str,
) -> None:
    # One pooled connection for the whole API: a download that kept one would stall the rest.
    tiny_pool = settings.model_copy(
        update={"db_pool_size": 1, "db_max_overflow": 0, "db_pool_timeout_s": 3}
    )
    key, other_key = api_key(session_factory), api_key(session_factory, "other")
    other_batch = store_pairs(session_factory, project_id(session_factory, "other"), tricky_specs())
    path = f"/v1/batches/{big_batch}/pairs"
    with live_api(tiny_pool, key) as api, ExitStack() as readers:
        slow = [readers.enter_context(slow_reader(api.url, key, path)) for _ in range(3)]
        time.sleep(0.5)  # the server fills the sockets and waits on the readers

        assert idle_transactions(session_factory) == 0
        for polling_key, batch_id in ((key, big_batch), (other_key, other_batch)):
            with httpx.Client(base_url=api.url, headers=bearer(polling_key)) as client:
                for _ in range(5):
                    started = time.perf_counter()
                    response = client.get(f"/v1/batches/{batch_id}")
                    assert response.status_code == 200, response.text
                    assert time.perf_counter() - started < 1.0
        with httpx.Client(base_url=api.url, headers=bearer(other_key)) as client:
            other_pairs = client.get(f"/v1/batches/{other_batch}/pairs")
            assert other_pairs.status_code == 200
            assert other_pairs.content.count(b"\n") == len(tricky_specs())

        for pieces in slow:  # the slow readers catch up and get every pair
            assert b"".join(pieces).count(b"\n") == BIG


def test_a_project_streams_at_most_its_limit_of_downloads_at_once(
    settings: Settings,
    redis: Redis,
    session_factory,  # type: ignore[no-untyped-def]
    big_batch: str,
) -> None:
    key, other_key = api_key(session_factory), api_key(session_factory, "other")
    other_batch = store_pairs(session_factory, project_id(session_factory, "other"), tricky_specs())
    path = f"/v1/batches/{big_batch}/pairs"
    with (
        live_api(settings.model_copy(update={"downloads_per_project": 2}), key) as api,
        httpx.Client(base_url=api.url, headers=bearer(key)) as client,
    ):
        with slow_reader(api.url, key, path), slow_reader(api.url, key, path):
            refused = client.get(path)
            assert refused.status_code == 429
            assert refused.headers["Retry-After"] == "5"
            assert "DOWNLOADS_PER_PROJECT=2" in refused.json()["detail"]
            with httpx.Client(base_url=api.url, headers=bearer(other_key)) as other:
                assert other.get(f"/v1/batches/{other_batch}/pairs").status_code == 200

        # The readers hung up: their slots are free again, long before their leases end.
        give_up = time.monotonic() + 10
        while True:
            with client.stream("GET", path) as response:
                if response.status_code == 200:
                    break
            assert response.status_code == 429
            assert time.monotonic() < give_up, "the slots of closed downloads stayed taken"
            time.sleep(0.1)


def test_a_slot_no_process_renews_lapses_and_a_renewed_one_does_not(
    settings: Settings, redis: Redis
) -> None:
    def take(project: str) -> DownloadSlot:
        return take_download_slot(
            redis, queue_prefix=settings.queue_name, project_id=project, limit=1, lease_s=1
        )

    take("abandoned")  # as if its API process had died: nobody renews or releases it
    renewed = take("renewed")
    with pytest.raises(TooManyRequestsError, match="DOWNLOADS_PER_PROJECT=1"):
        take("abandoned")
    time.sleep(0.6)
    renewed.renew()
    time.sleep(0.6)
    take("abandoned")  # its lease ran out
    with pytest.raises(TooManyRequestsError):
        take("renewed")
    renewed.release()
    take("renewed")


def test_a_redis_that_does_not_answer_never_cuts_a_download_off() -> None:
    nowhere = Redis(port=free_port(), socket_connect_timeout=0.2)
    slot = DownloadSlot(nowhere, "findap:downloads:proj_x")
    slot.renew()  # logged, not raised: the stream goes on
    slot.release()
