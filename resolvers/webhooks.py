"""Webhooks in GraphQL: a backend app manages its endpoints and sees what was delivered to them."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import Enum
from typing import Annotated, Any

import strawberry
from strawberry import relay

from gateway import resources as K
from gateway.change_feed import FEED_KINDS, encode_position, public_id
from gateway.store import ListArgs, Row, parse_global_id
from resolvers.changes import ResourceKindEnum
from resolvers.common import AfterArg, Connection, Edge, FirstArg, Info, global_id
from resolvers.types import ResourceChange


@strawberry.enum(description="Whether an endpoint receives deliveries.")
class WebhookEndpointStatus(Enum):
    ACTIVE = "active"
    DISABLED = "disabled"


@strawberry.enum(description="Where a delivery stands.")
class WebhookDeliveryStatus(Enum):
    PENDING = "pending"
    DELIVERED = "delivered"
    WITHHELD = "withheld"
    DEAD = "dead"


@strawberry.type(description="One attempt to deliver a webhook message.")
class WebhookAttempt:
    attempt: int = strawberry.field(description="1 for the first attempt, one more for each retry.")
    attempted_at: datetime = strawberry.field(description="When it was sent.")
    status_code: int | None = strawberry.field(description="The endpoint's HTTP status; null when it did not answer.")
    error: str | None = strawberry.field(description="What went wrong; null when it was delivered.")
    latency_ms: int = strawberry.field(description="How long the endpoint took to answer, in milliseconds.")


@strawberry.type(description="A change sent (or to be sent) to a webhook endpoint.")
class WebhookDelivery:
    id: strawberry.ID = strawberry.field(
        description="The message id, sent as the `webhook-id` header on every attempt."
    )
    kind: ResourceKindEnum = strawberry.field(description="The kind of the changed resource.")
    resource_id: strawberry.ID = strawberry.field(description="The changed resource's id.")
    action: ResourceChange = strawberry.field(description="What happened to it.")
    version: int = strawberry.field(description="The version the change made.")
    cursor: str = strawberry.field(description="The change's cursor in the change feed.")
    committed_at: datetime = strawberry.field(description="When the change was committed.")
    status: WebhookDeliveryStatus = strawberry.field(
        description="Pending (waiting or retrying), delivered, withheld (your app may no longer see the change), "
        "or dead (retries exhausted, or the endpoint was disabled)."
    )
    status_reason: str | None = strawberry.field(description="Why it was withheld, is retried, or died.")
    attempts: int = strawberry.field(description="How many times it was sent.")
    next_attempt_at: datetime | None = strawberry.field(description="When it is sent next, while pending.")
    last_status_code: int | None = strawberry.field(description="The HTTP status of the last attempt.")
    last_latency_ms: int | None = strawberry.field(description="The latency of the last attempt, in milliseconds.")
    delivered_at: datetime | None = strawberry.field(description="When the endpoint accepted it.")
    attempt_log: list[WebhookAttempt] = strawberry.field(description="Every attempt, oldest first.")

    @classmethod
    def from_row(cls, row: Row, attempts: list[Row]) -> WebhookDelivery:
        kind = FEED_KINDS[row["resource_kind"]]
        return cls(
            id=strawberry.ID(f"msg_{row['id'].hex}"),
            kind=ResourceKindEnum(kind.name),
            resource_id=strawberry.ID(public_id(kind, row["resource_id"])),
            action=ResourceChange(row["action"]),
            version=row["version"],
            cursor=encode_position(row["seq"]),
            committed_at=row["committed_at"],
            status=WebhookDeliveryStatus(row["status"]),
            status_reason=row["status_reason"],
            attempts=row["attempts"],
            next_attempt_at=row["next_attempt_at"] if row["status"] == "pending" else None,
            last_status_code=row["last_status_code"],
            last_latency_ms=row["last_latency_ms"],
            delivered_at=row["delivered_at"],
            attempt_log=[
                WebhookAttempt(
                    attempt=a["attempt"],
                    attempted_at=a["attempted_at"],
                    status_code=a["status_code"],
                    error=a["error"],
                    latency_ms=a["latency_ms"],
                )
                for a in attempts
            ],
        )


@strawberry.type(description="Where a backend app receives changes, and which.")
class WebhookEndpoint:
    id: strawberry.ID = strawberry.field(description="The endpoint's id.")
    url: str = strawberry.field(description="Where deliveries are POSTed.")
    description: str | None = strawberry.field(description="What the app uses it for.")
    kinds: list[ResourceKindEnum] = strawberry.field(description="The kinds of change it receives.")
    patient_id: strawberry.ID | None = strawberry.field(description="Only changes of this patient, when set.")
    unit_id: strawberry.ID | None = strawberry.field(
        description="Only changes of patients in this unit's active care, when set."
    )
    status: WebhookEndpointStatus = strawberry.field(description="Whether it receives deliveries.")
    status_reason: str | None = strawberry.field(description="Why it was disabled.")
    created_at: datetime = strawberry.field(description="When it was registered.")
    version: int = strawberry.field(description="1 when created, one more with every change.")
    previous_secret_valid_until: datetime | None = strawberry.field(
        description="After a rotation, until when the previous secret still signs (beside the new one)."
    )

    @classmethod
    def from_row(cls, row: Row) -> WebhookEndpoint:
        return cls(
            id=strawberry.ID(str(global_id(K.WEBHOOK_ENDPOINT, row["id"]))),
            url=row["url"],
            description=row["description"],
            kinds=[ResourceKindEnum(name) for name in row["kinds"]],
            patient_id=strawberry.ID(str(global_id(K.PATIENT, row["patient_id"]))) if row["patient_id"] else None,
            unit_id=strawberry.ID(str(global_id(K.ORGANIZATION, row["unit_id"]))) if row["unit_id"] else None,
            status=WebhookEndpointStatus(row["status"]),
            status_reason=row["status_reason"],
            created_at=row["created_at"],
            version=row["version"],
            previous_secret_valid_until=row["previous_secret_expires_at"],
        )


@strawberry.type(
    description="An endpoint with its signing secret, shown this once: keep it where your receiver can read it."
)
class WebhookEndpointWithSecret:
    endpoint: WebhookEndpoint = strawberry.field(description="The endpoint.")
    secret: str = strawberry.field(
        description="The Standard Webhooks signing secret (`whsec_...`); it is never shown again."
    )


@strawberry.input(description="A webhook endpoint to register for your backend app.")
class CreateWebhookEndpointInput:
    url: str = strawberry.field(description="An https URL on a public address.")
    kinds: list[ResourceKindEnum] = strawberry.field(description="The kinds of change to receive.")
    patient_id: strawberry.ID | None = strawberry.field(default=None, description="Only this patient's changes.")
    unit_id: strawberry.ID | None = strawberry.field(
        default=None, description="Only changes of patients in this unit's active care (an Organization id)."
    )
    description: str | None = strawberry.field(default=None, description="What the endpoint is for.")


EndpointIdArg = Annotated[strawberry.ID, strawberry.argument(description="The endpoint's id.")]


def _endpoint_uuid(value: strawberry.ID) -> str:
    _, raw = parse_global_id(str(value), K.WEBHOOK_ENDPOINT)
    return raw


async def webhook_endpoints(info: Info) -> list[WebhookEndpoint]:
    """Your app's webhook endpoints (every app's, for a policy admin), newest first."""
    return [WebhookEndpoint.from_row(row) for row in await info.context.webhooks.endpoints()]


async def webhook_deliveries(
    info: Info,
    endpoint_id: EndpointIdArg,
    first: FirstArg = 20,
    after: AfterArg = None,
    status: Annotated[
        WebhookDeliveryStatus | None, strawberry.argument(description="Only deliveries in this state.")
    ] = None,
) -> Connection[WebhookDelivery]:
    """What was sent to one of your endpoints, newest first: attempts, status and latency."""
    _endpoint_uuid(endpoint_id)
    filters: list[tuple[str, Any]] = [("endpoint_id", str(endpoint_id))]
    if status is not None:
        filters.append(("status", status.value))
    args = ListArgs(first=first, after=after, filters=tuple(filters))
    store = info.context.store
    page = await store.page(K.WEBHOOK_DELIVERY, args)
    attempts = await info.context.webhooks.attempts([str(row["id"]) for _, row in page.items])
    edges = [
        Edge(cursor=cursor, node=WebhookDelivery.from_row(row, attempts.get(str(row["id"]), [])))
        for cursor, row in page.items
    ]
    return Connection(
        edges=edges,
        page_info=relay.PageInfo(
            has_next_page=page.has_next_page,
            has_previous_page=after is not None,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        count=lambda: store.count(K.WEBHOOK_DELIVERY, args),
    )


@strawberry.type
class WebhookMutations:
    @strawberry.mutation(
        description="Register a webhook endpoint for your backend app. It receives the changes committed from now "
        "on that your app may read; the answer shows its signing secret, this once."
    )
    async def create_webhook_endpoint(
        self,
        info: Info,
        input: Annotated[CreateWebhookEndpointInput, strawberry.argument(description="Where, and which changes.")],
    ) -> WebhookEndpointWithSecret:
        patient = uuid.UUID(parse_global_id(str(input.patient_id), K.PATIENT)[1]) if input.patient_id else None
        unit = uuid.UUID(parse_global_id(str(input.unit_id), K.ORGANIZATION)[1]) if input.unit_id else None
        row, secret = await info.context.webhooks.create(
            input.url,
            [FEED_KINDS[kind.value] for kind in input.kinds],
            patient_id=patient,
            unit_id=unit,
            description=input.description,
        )
        return WebhookEndpointWithSecret(endpoint=WebhookEndpoint.from_row(row), secret=secret)

    @strawberry.mutation(
        description="A new signing secret for an endpoint, shown this once. The previous secret keeps signing "
        "beside it for a day (`previousSecretValidUntil`), so your receiver can switch without missing a message."
    )
    async def rotate_webhook_secret(self, info: Info, id: EndpointIdArg) -> WebhookEndpointWithSecret:
        row, secret = await info.context.webhooks.rotate_secret(_endpoint_uuid(id))
        return WebhookEndpointWithSecret(endpoint=WebhookEndpoint.from_row(row), secret=secret)

    @strawberry.mutation(description="Stop deliveries to an endpoint; its pending deliveries are dead-lettered.")
    async def disable_webhook_endpoint(
        self,
        info: Info,
        id: EndpointIdArg,
        reason: Annotated[str | None, strawberry.argument(description="Why, for the record.")] = None,
    ) -> WebhookEndpoint:
        return WebhookEndpoint.from_row(await info.context.webhooks.set_enabled(_endpoint_uuid(id), False, reason))

    @strawberry.mutation(
        description="Resume deliveries to an endpoint, with the changes committed from now on; the change feed, "
        "from the cursor of the last delivery, covers what happened meanwhile."
    )
    async def enable_webhook_endpoint(self, info: Info, id: EndpointIdArg) -> WebhookEndpoint:
        return WebhookEndpoint.from_row(await info.context.webhooks.set_enabled(_endpoint_uuid(id), True, None))
