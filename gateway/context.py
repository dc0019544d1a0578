"""Per-request context: the principal, the store (the only door to data) and the DataLoaders.

A live connection (a websocket with subscriptions) has one context for as long as it lasts; each time
it delivers, its principal is looked up again and the context renewed: a new store and new loaders
(nothing cached from an earlier delivery), the same audit trail (so records never go astray between
renewals)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import HTTPConnection
from strawberry.dataloader import DataLoader

from gateway.audit import AuditTrail
from gateway.auth import CLAIMS_SCOPE_KEY, Principal
from gateway.change_feed import ChangeFeed
from gateway.declare import ResourceKind
from gateway.explain import Explainer
from gateway.registry import Registry
from gateway.store import ListArgs, Page, Row, Store
from gateway.webhooks import WebhookEndpoints
from gateway.write_path import JournalWriter
from gateway.writes import JournalWrites

if TYPE_CHECKING:
    from gateway.admission import Admitted
    from gateway.live import LiveSession
    from gateway.runtime import Runtime

MAX_BATCH = 500


@dataclass
class Loaders:
    """Batching loaders: every `load` of one tick becomes one SQL statement and at most one Cerbos
    call, whatever the number of parents. Loaders are made on first use, one per kind (items) and
    per kind, parent column and list arguments (nested lists and their counts)."""

    store: Store
    _items: dict[str, DataLoader[str, Row]] = field(default_factory=dict)
    _pages: dict[tuple[str, str, ListArgs], DataLoader[uuid.UUID, Page]] = field(default_factory=dict)
    _counts: dict[tuple[str, str, ListArgs], DataLoader[uuid.UUID, int]] = field(default_factory=dict)
    _permissions: dict[tuple[str, str], DataLoader[str, bool]] = field(default_factory=dict)

    def permission(self, kind: ResourceKind, action: str) -> DataLoader[str, bool]:
        """Field-level permissions (e.g. a note's text) for many rows at once."""
        key = (kind.name, action)
        if key not in self._permissions:

            async def load(ids: list[str]) -> list[bool | Exception]:
                return await self.store.permitted(kind, action, ids)

            self._permissions[key] = DataLoader(load_fn=load, max_batch_size=MAX_BATCH)
        return self._permissions[key]

    def item(self, kind: ResourceKind) -> DataLoader[str, Row]:
        """Resources of one kind by id."""
        if kind.name not in self._items:

            async def load(ids: list[str]) -> list[Row | Exception]:
                return await self.store.by_ids(kind, ids)

            self._items[kind.name] = DataLoader(load_fn=load, max_batch_size=MAX_BATCH)
        return self._items[kind.name]

    def pages(self, kind: ResourceKind, parent_column: str, args: ListArgs) -> DataLoader[uuid.UUID, Page]:
        """A page of a parent's children of one kind, for many parents at once."""
        key = (kind.name, parent_column, args)
        if key not in self._pages:

            async def load(parents: list[uuid.UUID]) -> list[Page]:
                return await self.store.pages_by_parent(kind, parent_column, parents, args)

            self._pages[key] = DataLoader(load_fn=load, max_batch_size=MAX_BATCH)
        return self._pages[key]

    def counts(self, kind: ResourceKind, parent_column: str, args: ListArgs) -> DataLoader[uuid.UUID, int]:
        """How many children of one kind each parent has that the principal may read."""
        key = (kind.name, parent_column, args)
        if key not in self._counts:

            async def load(parents: list[uuid.UUID]) -> list[int]:
                return await self.store.counts_by_parent(kind, parent_column, parents, args)

            self._counts[key] = DataLoader(load_fn=load, max_batch_size=MAX_BATCH)
        return self._counts[key]


@dataclass
class Context:
    """What resolvers get as `info.context`; they read data only through `store` and `loaders`."""

    request: HTTPConnection
    principal: Principal
    store: Store
    audit: AuditTrail
    loaders: Loaders
    registry: Registry
    writes: JournalWrites
    journal: JournalWriter
    changes: ChangeFeed
    webhooks: WebhookEndpoints
    explainer: Explainer
    runtime: Runtime
    live: LiveSession | None = None
    admitted: Admitted | None = None

    @classmethod
    def build(cls, runtime: Runtime, request: HTTPConnection, principal: Principal) -> Context:
        """The context of one request (or one live connection) of `principal`."""
        audit = AuditTrail(principal, runtime.authorizer.policy_version)
        return cls(
            request=request, runtime=runtime, principal=principal, audit=audit, **_services(runtime, principal, audit)
        )

    async def ensure_current_principal(self) -> None:
        """Before statements that do not prove it themselves: a principal kept from an earlier request is
        used only while `principal_epoch` has not moved since it was read (one round trip, the one a
        fresh lookup would cost); otherwise it is looked up again."""
        if not self.principal.kept or self.live is not None:
            return
        epoch = await self.runtime.pool.fetchval("SELECT epoch FROM principal_epoch")
        if epoch != self.principal.epoch:
            await self.look_up_principal_again()

    async def look_up_principal_again(self) -> None:
        """Serve this request with the principal as the journal says now (the kept one is out of date)."""
        claims = self.request.scope[CLAIMS_SCOPE_KEY]
        self.renew(await self.runtime.authenticator.reauthenticate(claims, fresh=True))

    def renew(self, principal: Principal) -> None:
        """Serve `principal` (looked up again) with fresh stores and loaders, keeping the audit trail."""
        self.audit.principal, self.audit.policy_version = principal, self.runtime.authorizer.policy_version
        self.principal = principal
        for name, service in _services(self.runtime, principal, self.audit).items():
            setattr(self, name, service)


def _services(runtime: Runtime, principal: Principal, audit: AuditTrail) -> dict[str, Any]:
    """The doors to data of one principal, all writing to one audit trail."""
    pool, authorizer, settings = runtime.pool, runtime.authorizer, runtime.settings
    reads = pool if settings.is_first_party(principal.client_id) else runtime.app_shares.of(principal.client_id)
    store = Store(reads, authorizer, principal, audit, settings.max_page_size)
    return {
        "store": store,
        "loaders": Loaders(store),
        "registry": Registry(pool, authorizer, principal, audit, runtime.app_status),
        "writes": JournalWrites(pool, authorizer, principal, audit),
        "journal": JournalWriter(pool, authorizer, principal, audit),
        "changes": ChangeFeed(pool, store, audit, settings.change_scan_window),
        "webhooks": WebhookEndpoints(pool, authorizer, principal, audit, settings),
        "explainer": Explainer(pool, authorizer, principal, audit, settings.claim_names),
    }
