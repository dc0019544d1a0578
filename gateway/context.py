"""Per-request context: the principal, the store (the only door to data) and the DataLoaders."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request
from strawberry.dataloader import DataLoader

from gateway.audit import AuditTrail
from gateway.auth import Principal
from gateway.store import PatientRecord, Store

MAX_BATCH = 500


@dataclass
class Loaders:
    """Batching loaders: every `load` of one tick becomes one SQL statement and one Cerbos call."""

    store: Store
    patient: DataLoader[str, PatientRecord] = field(init=False)

    def __post_init__(self) -> None:
        self.patient = DataLoader(load_fn=self.store.patients_by_ids, max_batch_size=MAX_BATCH)


@dataclass
class Context:
    """What resolvers get as `info.context`; they read data only through `store` and `loaders`."""

    request: Request
    principal: Principal
    store: Store
    audit: AuditTrail
    loaders: Loaders
