"""The trusted issuer's signing keys: fetched from its JWKS URL and cached.

A token whose `kid` is not in the cached set triggers one refetch (the issuer may have rotated its
keys), but at most one per `min_refetch_seconds`, so a flood of tokens with made-up kids cannot turn
the gateway into a load generator against the issuer. The demo issuer's key is a static set.
"""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
from joserfc.jwk import KeySet

from gateway.errors import ServiceUnavailable

log = logging.getLogger(__name__)


class StaticKeys:
    """A fixed key set (the demo issuer's own key)."""

    def __init__(self, keys: KeySet) -> None:
        self._keys = keys

    async def for_kid(self, kid: str | None) -> KeySet:
        """The keys to verify a token with this kid."""
        return self._keys


class RemoteJwks:
    """Keys published at a JWKS URL, cached for `ttl_seconds` and refetched on an unknown kid."""

    def __init__(self, url: str, *, ttl_seconds: float = 300.0, min_refetch_seconds: float = 10.0) -> None:
        self.url = url
        self._ttl = ttl_seconds
        self._min_refetch = min_refetch_seconds
        self._keys: KeySet | None = None
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()
        self.fetches = 0

    def _kids(self) -> set[str]:
        return {k.kid for k in self._keys.keys if k.kid} if self._keys else set()

    async def for_kid(self, kid: str | None) -> KeySet:
        """The cached keys, refreshed when stale or when `kid` is unknown (rate-limited)."""
        now = time.monotonic()
        stale = now - self._fetched_at > self._ttl
        unknown = kid is not None and kid not in self._kids()
        if stale or (unknown and now - self._fetched_at >= self._min_refetch):
            async with self._lock:
                if time.monotonic() - self._fetched_at >= min(self._min_refetch, self._ttl) or self._keys is None:
                    await self._fetch()
        if self._keys is None:
            raise ServiceUnavailable("the token issuer's keys cannot be fetched; try again shortly")
        return self._keys

    async def _fetch(self) -> None:
        self._fetched_at = time.monotonic()
        self.fetches += 1
        try:
            async with httpx.AsyncClient(timeout=5.0) as client:
                response = await client.get(self.url)
                response.raise_for_status()
                self._keys = KeySet.import_key_set(response.json())
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            log.error("fetching the issuer's JWKS failed: %s", type(exc).__name__)
