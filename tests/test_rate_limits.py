"""The rate limiters on their own, against real PostgreSQL and Redis: budgets taken all together or not at
all (PostgreSQL), never more than the limit under concurrency, and the sliding window's arithmetic for
Retry-After."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from gateway.db import create_pool, migrate
from gateway.rate_limits import (
    WINDOW_SECONDS,
    Budget,
    LeasingRateLimiter,
    PostgresRateLimiter,
    RedisRateLimiter,
    seconds_until_room,
)
from tests.conftest import run


@pytest.fixture(scope="module")
def database(make_database: Any) -> str:
    url: str = make_database()

    async def prepare() -> None:
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            await migrate(conn)
        finally:
            await conn.close()

    run(prepare())
    return url


def test_a_request_takes_every_budget_or_none(database: str) -> None:
    async def scenario() -> list[Any]:
        pool = await create_pool(database, min_size=1, max_size=2)
        try:
            limiter = PostgresRateLimiter(pool)
            roomy = Budget("app", "app:all-or-none", 1, 100)
            tight = Budget("cost", "cost:all-or-none", 40, 50)
            first = await limiter.take([roomy, tight])
            second = await limiter.take([roomy, tight])
            counts = await pool.fetch(
                "SELECT key, current FROM rate_counter WHERE key LIKE '%all-or-none' ORDER BY key"
            )
            return [first, second, [(r["key"], r["current"]) for r in counts]]
        finally:
            await pool.close()

    first, second, counts = run(scenario())
    assert first.allowed and not second.allowed
    assert counts == [("app:all-or-none", 1), ("cost:all-or-none", 40)], "the refused request took nothing"
    cost = next(s for s in second.standings if s.budget.name == "cost")
    assert cost.remaining == 10 and cost.retry_after is not None and cost.retry_after > 0


def test_concurrent_requests_never_take_more_than_the_limit(database: str) -> None:
    async def scenario() -> int:
        pool = await create_pool(database, min_size=4, max_size=8)
        try:
            limiter = PostgresRateLimiter(pool)
            budgets = [Budget("app", "app:concurrent", 1, 25), Budget("user", "user:concurrent", 1, 1000)]
            verdicts = await asyncio.gather(*(limiter.take(budgets) for _ in range(60)))
            return sum(v.allowed for v in verdicts)
        finally:
            await pool.close()

    assert run(scenario()) == 25


def test_room_comes_back_as_the_sliding_window_moves_on() -> None:
    assert seconds_until_room(current=0, previous=0, elapsed=0.5, amount=1, limit=10) == 0.0
    assert seconds_until_room(current=0, previous=10, elapsed=0.5, amount=1, limit=10) == 0.0
    # 10 in the previous minute with 80% of it in view, and 2 now: room for one more when 70% is.
    assert seconds_until_room(current=2, previous=10, elapsed=0.2, amount=1, limit=10) == pytest.approx(6.0)
    # The current minute is full: wait for it to end, then for a tenth of it to slide out.
    assert seconds_until_room(current=10, previous=0, elapsed=0.5, amount=1, limit=10) == pytest.approx(36.0)
    assert seconds_until_room(current=0, previous=0, elapsed=0.0, amount=11, limit=10) is None


def test_with_redis_concurrent_requests_never_take_more_than_the_limit_and_the_refused_learn_when(
    redis_url: str,
) -> None:
    key = f"app:redis-{uuid.uuid4().hex}"

    async def scenario() -> list[Any]:
        limiter = RedisRateLimiter(redis_url)
        try:
            verdicts = await asyncio.gather(*(limiter.take([Budget("app", key, 1, 25)]) for _ in range(60)))
        finally:
            limiter.close()
        return list(verdicts)

    verdicts = run(scenario())
    assert sum(v.allowed for v in verdicts) == 25
    refused = next(v for v in verdicts if not v.allowed)
    [standing] = refused.standings
    assert standing.remaining == 0 and 1 <= refused.retry_after <= 60
    assert '"app";q=25;w=60' in dict(refused.headers())["ratelimit-policy"]


def test_a_lease_lets_a_process_spend_a_fiftieth_of_a_budget_without_asking_the_shared_counter(database: str) -> None:
    async def scenario() -> tuple[list[int], list[bool]]:
        pool = await create_pool(database, min_size=1, max_size=2)
        try:
            limiter = LeasingRateLimiter(PostgresRateLimiter(pool))
            budget = Budget("user", "user:leased", 1, 500)
            counted, allowed = [], []
            for _ in range(12):
                allowed.append((await limiter.take([budget])).allowed)
                counted.append(await pool.fetchval("SELECT current FROM rate_counter WHERE key = 'user:leased'"))
            return counted, allowed
        finally:
            await pool.close()

    away_from_a_window_end()
    counted, allowed = run(scenario())
    assert all(allowed)
    # the first request takes a lease of 10 (500 / 50), its own unit and 9 more; the next nine spend them
    assert counted[:10] == [10] * 10, counted
    assert counted[10:] == [20, 20], "the lease spent, the next request takes a new one"


def test_processes_with_leases_never_admit_more_than_the_limit_together(database: str) -> None:
    async def scenario() -> int:
        pool = await create_pool(database, min_size=2, max_size=4)
        try:
            processes = [LeasingRateLimiter(PostgresRateLimiter(pool)) for _ in range(3)]
            budget = Budget("app", f"app:leased-{uuid.uuid4()}", 1, 200)
            admitted = 0
            for _ in range(300):
                for limiter in processes:
                    admitted += (await limiter.take([budget])).allowed
            return admitted
        finally:
            await pool.close()

    away_from_a_window_end()
    admitted = run(scenario())
    # never over the limit; at most one lease (200 / 50) per process left unspent
    assert 200 - 3 * 4 <= admitted <= 200, admitted


def away_from_a_window_end(margin: float = 15) -> None:
    """Wait until a new window has begun if the current one ends within `margin` seconds: a lease lasts
    for its window only."""
    left = WINDOW_SECONDS - time.time() % WINDOW_SECONDS
    if left < margin:
        time.sleep(left + 0.5)
