"""Rate limits that hold across workers and processes: sliding-window counters in PostgreSQL.

Each budget is a key (`app:<client id>`, `user:<person>`, `cost:<client id>`), an amount to take and a
limit per minute. The counter keeps the current minute's count and the previous minute's, and estimates
the last sixty seconds as `previous x (share of the previous minute still in view) + current`: the
smooth sliding window Cloudflare describes, with two numbers per key. All of a request's budgets are
taken in one statement (`rate_take`, migration 0016), atomically: if any has no room, none is taken.

No well-kept library keeps such counters in PostgreSQL (`limits` speaks Redis, Memcached and MongoDB);
the table and function are small, hence this module. With `REDIS_URL` set, the counters live in Redis
instead, kept by the `limits` library's sliding-window counter: there each budget is taken on its own, so
a request refused by one budget may still have been counted by the others. What clients see follows the IETF draft
"RateLimit header fields for HTTP": `RateLimit-Policy` names each budget and `RateLimit` what remains of
the tightest, and a refusal carries `Retry-After`.

Either store is asked through `LeasingRateLimiter`, which takes a large budget in small leases (a fiftieth
of its limit, at most a hundred requests' worth) and spends them in the process: a request whose budgets
are all covered by leases costs no round trip. Every leased unit is counted in the shared counter when
it is taken, so together the processes never admit more than a limit; what a process holds unspent when
its window ends is lost, at most a fiftieth of the limit per process.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, replace
from typing import Any, Protocol

import asyncpg
import coredis
from limits import RateLimitItemPerMinute
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.storage import storage_from_string

WINDOW_SECONDS = 60


@dataclass(frozen=True)
class Budget:
    """What one request takes from one budget."""

    name: str
    key: str
    amount: int
    limit: int


@dataclass(frozen=True)
class Standing:
    """One budget after the request: what remains of it, and when it is whole again."""

    budget: Budget
    remaining: int
    reset_seconds: int
    retry_after: int | None


@dataclass(frozen=True)
class Verdict:
    """Whether the request had room in every budget, and how each stands."""

    allowed: bool
    standings: tuple[Standing, ...]

    @property
    def retry_after(self) -> int:
        """Seconds until every exhausted budget has room for this request again."""
        return max((s.retry_after or 0 for s in self.standings), default=0) or 1

    def headers(self) -> list[tuple[str, str]]:
        """`RateLimit-Policy` for every budget and `RateLimit` for the one with the least left (draft-ietf-httpapi-
        ratelimit-headers); a refusal's `Retry-After` comes with its error."""
        if not self.standings:
            return []
        policy = ", ".join(f'"{s.budget.name}";q={s.budget.limit};w={WINDOW_SECONDS}' for s in self.standings)
        tightest = min(self.standings, key=lambda s: s.remaining / s.budget.limit)
        headers = [
            ("ratelimit-policy", policy),
            ("ratelimit", f'"{tightest.budget.name}";r={tightest.remaining};t={tightest.reset_seconds}'),
        ]
        return headers


def seconds_until_room(current: int, previous: int, elapsed: float, amount: int, limit: int) -> float | None:
    """How long until `amount` fits a sliding window now holding `current` and `previous` with `elapsed`
    (0-1) of the current window gone; None if it never fits (more than the whole limit)."""
    if amount > limit:
        return None
    if previous * (1 - elapsed) + current + amount <= limit:
        return 0.0
    if current + amount <= limit:
        needed = 1 - (limit - current - amount) / previous
        return (needed - elapsed) * WINDOW_SECONDS
    needed_next = 0.0 if current == 0 else max(0.0, 1 - (limit - amount) / current)
    return (1 - elapsed + needed_next) * WINDOW_SECONDS


def standing(budget: Budget, current: int, previous: int, elapsed: float, taken: bool) -> Standing:
    """A budget's standing from its counter as `rate_take` left it."""
    used = previous * (1 - elapsed) + current
    wait = None if taken else seconds_until_room(current, previous, elapsed, budget.amount, budget.limit)
    return Standing(
        budget=budget,
        remaining=max(0, math.floor(budget.limit - used)),
        reset_seconds=max(1, math.ceil((1 - elapsed) * WINDOW_SECONDS)),
        retry_after=None if taken else (math.ceil(wait) if wait is not None else None),
    )


class RateLimiter(Protocol):
    """Where the counters are kept."""

    async def take(self, budgets: list[Budget]) -> Verdict: ...

    def close(self) -> None: ...


class PostgresRateLimiter:
    """Counters in the journal's PostgreSQL, shared by every process that uses the database."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    def close(self) -> None:
        """Nothing to close: the pool belongs to the gateway."""

    async def take(self, budgets: list[Budget]) -> Verdict:
        """Take every budget's amount if all have room, else none; one statement."""
        if not budgets:
            return Verdict(True, ())
        ordered = sorted(budgets, key=lambda b: b.key)
        rows = await self._pool.fetch(
            "SELECT key, current, previous, elapsed, taken FROM rate_take($1::text[], $2::bigint[], $3::bigint[], $4)",
            [b.key for b in ordered],
            [b.amount for b in ordered],
            [b.limit for b in ordered],
            WINDOW_SECONDS,
        )
        taken = bool(rows[0]["taken"])
        by_key = {r["key"]: r for r in rows}
        standings = tuple(
            standing(b, by_key[b.key]["current"], by_key[b.key]["previous"], by_key[b.key]["elapsed"], taken)
            for b in budgets
        )
        return Verdict(taken, standings)


class RedisRateLimiter:
    """Counters in Redis (`REDIS_URL`), shared by every process that uses the same Redis."""

    def __init__(self, redis_url: str) -> None:
        self._connections = coredis.ConnectionPool.from_url(redis_url)
        # `limits` documents `connection_pool` but types its options as scalars; ours is closed in `close`.
        options: dict[str, Any] = {"connection_pool": self._connections}
        storage = storage_from_string(f"async+{redis_url}", **options)
        self._limiter = SlidingWindowCounterRateLimiter(storage)

    def close(self) -> None:
        """Close the connections to Redis."""
        self._connections.disconnect()

    async def take(self, budgets: list[Budget]) -> Verdict:
        """Take every budget's amount where it has room; allowed only if all had room."""
        items = [RateLimitItemPerMinute(b.limit, namespace="akson") for b in budgets]
        taken = await asyncio.gather(
            *(self._hit(i, b) for i, b in zip(items, budgets, strict=True))
        )
        stats = await asyncio.gather(
            *(self._limiter.get_window_stats(i, b.key) for i, b in zip(items, budgets, strict=True))
        )
        now = time.time()
        standings = tuple(
            Standing(
                budget=b,
                remaining=max(0, s.remaining),
                reset_seconds=max(1, math.ceil(s.reset_time - now)),
                retry_after=None if ok else max(1, math.ceil(s.reset_time - now)),
            )
            for b, ok, s in zip(budgets, taken, stats, strict=True)
        )
        return Verdict(all(taken), standings)

    async def _hit(self, item: RateLimitItemPerMinute, budget: Budget) -> bool:
        """Take a budget's amount; nothing to take (a process's lease covers it) always fits."""
        return budget.amount == 0 or await self._limiter.hit(item, budget.key, cost=budget.amount)


# A lease is this share of a budget's limit, and at most this many requests' worth: budgets whose limit is
# under LEASE_SHARE times a request's amount are taken request by request.
LEASE_SHARE = 50
LEASE_REQUESTS = 100


@dataclass
class _Lease:
    window: int
    left: int
    # What remained of the budget in the shared counter when the lease was taken (the lease counted as used).
    remaining: int


def lease_size(budget: Budget) -> int:
    """How much of a budget a process takes at once (its own request's amount included)."""
    return min(budget.limit // LEASE_SHARE, LEASE_REQUESTS * budget.amount)


class LeasingRateLimiter:
    """Takes budgets from the shared counters in leases and spends them locally (module docstring)."""

    def __init__(self, shared: RateLimiter) -> None:
        self._shared = shared
        self._leases: dict[str, _Lease] = {}

    def close(self) -> None:
        """Close the shared counters' connection."""
        self._shared.close()

    async def take(self, budgets: list[Budget]) -> Verdict:
        """Take every budget's amount if all have room, else none: from this process's leases when they
        cover the request, otherwise from the shared counters, with a new lease on top where it fits."""
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        leases = [self._current(b.key, window) for b in budgets]
        covered = [lease is not None and lease.left >= b.amount for lease, b in zip(leases, budgets, strict=True)]
        if not all(covered):
            extras = [0 if c else max(0, lease_size(b) - b.amount) for c, b in zip(covered, budgets, strict=True)]
            verdict = await self._shared.take(
                [replace(b, amount=0 if c else b.amount + e) for c, b, e in zip(covered, budgets, extras, strict=True)]
            )
            if not verdict.allowed and any(extras):
                extras = [0] * len(budgets)
                verdict = await self._shared.take(
                    [replace(b, amount=0 if c else b.amount) for c, b in zip(covered, budgets, strict=True)]
                )
            if not verdict.allowed:
                standings = zip(verdict.standings, budgets, strict=True)
                return Verdict(False, tuple(replace(s, budget=b) for s, b in standings))
            taken = zip(leases, budgets, extras, verdict.standings, covered, strict=True)
            for lease, budget, extra, shared, c in taken:
                if c:
                    assert lease is not None
                    lease.remaining = shared.remaining
                else:
                    held = lease.left if lease is not None else 0
                    self._leases[budget.key] = _Lease(window, held + extra, shared.remaining)
        for lease, budget, c in zip(leases, budgets, covered, strict=True):
            if c:
                assert lease is not None
                lease.left -= budget.amount
        return Verdict(True, tuple(self._standing(b, now) for b in budgets))

    def _current(self, key: str, window: int) -> _Lease | None:
        lease = self._leases.get(key)
        if lease is not None and lease.window != window:
            del self._leases[key]
            return None
        return lease

    def _standing(self, budget: Budget, now: float) -> Standing:
        """A budget as this process sees it: what the shared counter left, plus the lease it holds."""
        lease = self._leases[budget.key]
        reset = max(1, math.ceil((lease.window + 1) * WINDOW_SECONDS - now))
        return Standing(budget, min(budget.limit, lease.remaining + lease.left), reset, None)
