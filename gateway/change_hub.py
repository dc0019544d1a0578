"""The change hub: one per gateway process, it learns of committed changes and wakes their followers.

PostgreSQL's LISTEN/NOTIFY wakes it (the outbox's commit trigger notifies `akson_changes`); the outbox
stays the truth. On each wake-up the hub reads the headers (kind, patient) of the events committed since
its last look, once for all followers, and wakes only followers whose filter could want one of them;
the others move on without a query. A notification lost with a dropped connection costs nothing: the
hub also looks every `poll_seconds`, and looks again after reconnecting. Followers hold one event flag
each, never a queue, so a follower that is slow to read costs no memory here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg

from gateway.change_feed import ChangeFilter, head
from gateway.db import GATEWAY_ROLE

log = logging.getLogger(__name__)
T = TypeVar("T")

CHANNEL = "akson_changes"
# Beyond this many new events in one look, followers are all woken rather than matched one by one.
MATCH_LIMIT = 5_000


@dataclass(eq=False)
class Follower:
    """A reader of the feed in this process: what it follows, how far it has read, and its wake-up flag."""

    wanted: ChangeFilter
    position: int
    woken: asyncio.Event = field(default_factory=asyncio.Event)

    def advance(self, position: int) -> None:
        """Note that everything up to `position` has been read (positions never go back)."""
        self.position = max(self.position, position)


class ChangeHub:
    """Wakes this process's followers when changes they may want commit."""

    def __init__(self, database_url: str, poll_seconds: float) -> None:
        self._url = database_url
        self._poll = poll_seconds
        self._followers: set[Follower] = set()
        self._signal = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self.position = 0
        self.generation = 0
        self._shared: dict[Hashable, asyncio.Future[Any]] = {}
        self._shared_generation = 0

    async def start(self) -> None:
        """Connect and begin listening; returns once the hub knows the newest position."""
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._ready.wait(), timeout=30)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def follow(self, wanted: ChangeFilter, position: int) -> Follower:
        """Register a follower that has read up to `position`; it is woken when something may be new."""
        follower = Follower(wanted, position)
        self._followers.add(follower)
        if position < self.position:
            follower.woken.set()
        return follower

    def unfollow(self, follower: Follower) -> None:
        self._followers.discard(follower)

    async def shared(self, key: Hashable, make: Callable[[], Awaitable[T]]) -> T:
        """The result of `make` for `key`, computed once for all the followers woken by the same look: when
        a thousand subscriptions of one principal wake for one commit, they read one page and look the
        principal up once. Results are kept until the next look, never longer."""
        if self._shared_generation != self.generation:
            self._shared.clear()
            self._shared_generation = self.generation
        future = self._shared.get(key)
        if future is None:
            future = self._shared[key] = asyncio.ensure_future(make())
            future.add_done_callback(lambda done: done.cancelled() or done.exception())
        result: T = await asyncio.shield(future)
        return result

    @property
    def followers(self) -> int:
        return len(self._followers)

    def _notified(self, connection: object, pid: int, channel: str, payload: str) -> None:
        self._signal.set()

    async def _run(self) -> None:
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(
                    self._url, server_settings={"application_name": "akson-change-hub", "role": GATEWAY_ROLE}
                )
                await conn.add_listener(CHANNEL, self._notified)
                if not self._ready.is_set():
                    self.position = await head(conn)
                    self._ready.set()
                while True:
                    self._signal.clear()
                    await self._look(conn)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._signal.wait(), self._poll)
            except (
                OSError,
                asyncpg.PostgresConnectionError,
                asyncpg.CannotConnectNowError,
                asyncpg.InterfaceError,
            ) as exc:
                log.warning("change hub lost its database connection (%s); reconnecting", type(exc).__name__)
                await asyncio.sleep(1)
            except Exception:
                log.exception("change hub failed; starting again")
                await asyncio.sleep(self._poll)
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()

    async def _look(self, conn: asyncpg.Connection) -> None:
        """Read the events committed since the last look and wake the followers that may want them."""
        newest = await head(conn)
        if newest <= self.position:
            return
        since = self.position
        rows = await conn.fetch(
            "SELECT resource_kind, patient_id FROM change_event WHERE seq > $1 AND seq <= $2 LIMIT $3",
            since,
            newest,
            MATCH_LIMIT + 1,
        )
        batch: dict[str, set[str | None]] | None = None
        if len(rows) <= MATCH_LIMIT:
            batch = {}
            for row in rows:
                batch.setdefault(row["resource_kind"], set()).add(str(row["patient_id"]) if row["patient_id"] else None)
        self.position = newest
        self.generation += 1
        for follower in list(self._followers):
            if batch is not None and follower.position >= since and not follower.wanted.wants_any(batch):
                follower.advance(newest)
            else:
                follower.woken.set()
