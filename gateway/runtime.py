"""The long-lived resources of one gateway process, made by the app's lifespan and shared by requests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg
from cerbos.sdk.grpc.client import AsyncCerbosClient
from joserfc.jwk import ECKey
from starlette.types import Scope

from gateway.audit import AuditWriter
from gateway.auth import Authenticator
from gateway.authz import Authorizer
from gateway.change_hub import ChangeHub
from gateway.config import Settings
from gateway.db import AppShares
from gateway.registry import AppStatus
from gateway.token_endpoint import TokenEndpoint

if TYPE_CHECKING:
    from gateway.bulk_export import BulkExports
    from gateway.console_oidc import ConsoleSignIn
    from gateway.rate_limits import RateLimiter
    from gateway.trusted_documents import TrustedDocuments
    from gateway.webhook_worker import WebhookWorker


@dataclass
class Runtime:
    """Long-lived resources of one gateway process."""

    settings: Settings
    pool: asyncpg.Pool
    authorizer: Authorizer
    authenticator: Authenticator
    cerbos: AsyncCerbosClient
    issuer_key: ECKey
    app_status: AppStatus
    token_endpoint: TokenEndpoint
    audit_writer: AuditWriter
    hub: ChangeHub
    webhooks: WebhookWorker
    trusted_documents: TrustedDocuments
    rate_limiter: RateLimiter
    app_shares: AppShares
    exports: BulkExports
    # The console's OpenID Connect sign-in, outside demo mode when AKSON_CONSOLE_CLIENT_ID is set.
    console_sign_in: ConsoleSignIn | None = None


def runtime_of(scope: Scope) -> Runtime:
    """The process runtime, from the app that serves this request."""
    runtime: Runtime = scope["app"].state.runtime
    return runtime
