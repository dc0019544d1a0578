"""Settings from the environment, read once at start-up.

Every knob the gateway has is here, with its environment variable and default, so an operator finds
them in one place. Paths default to folders of the project checkout (the working directory).
"""

from __future__ import annotations

import ipaddress
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gateway.claims import ClaimNames
from gateway.personas import DEMO_APP_CLIENT_ID


def _cerbos_binary_default(project: Path) -> Path:
    system = platform.system().lower()
    machine = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower(), platform.machine().lower()
    )
    name = f"cerbos-{system}-{machine}"
    return project / "node_modules" / "@cerbos" / name / name


DEMO_BASE_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class Settings:
    """Everything configurable, with defaults that run the demo journal from a checkout."""

    project_dir: Path
    data_dir: Path
    database_url: str | None
    cerbos_url: str | None
    policy_dir: Path
    cerbos_binary: Path
    issuer: str
    audience: str
    jwks_url: str | None
    jwks_min_refetch_seconds: float
    claim_names: ClaimNames
    traces_exporter: str
    max_page_size: int = 100
    # Demo mode (`akson serve --demo`): the demo issuer, its token endpoint and persona tokens are trusted,
    # and the audit-off switch for benchmarks is allowed. Outside it the gateway refuses to start while
    # any of them is configured (see `production_problems`).
    demo: bool = False
    # Where clients reach the gateway (scheme, host, port, path prefix): the base of every URL the
    # gateway publishes and of the DPoP `htu` it checks. Never taken from a request's Host header.
    public_url: str | None = None
    # What one GraphQL document may ask for, checked before validation and execution: nesting depth, lexer
    # tokens, aliases, and fields selected once every fragment spread is expanded (a document of fragments
    # that each spread the previous one twice is small but selects 2^N fields).
    graphql_max_depth: int = 10
    graphql_max_tokens: int = 2000
    graphql_max_aliases: int = 30
    graphql_max_selections: int = 1000
    audit_disabled_for_benchmark: bool = False
    # Connections per worker. Few statements at once keep PostgreSQL fastest when it shares the gateway's
    # cores: on 2 cores, 3 per worker answered Q2 at c32 faster than 10 (bench/PROFILE.md).
    database_pool_size: int = 3
    # The longest the PDP client waits between attempts to reconnect to a PDP that went away.
    pdp_reconnect_seconds: float = 1.0
    # How long a caller's principal may be kept between requests at most; every statement that uses a kept
    # one proves it current (principal_epoch), so this only bounds memory of callers gone quiet.
    principal_keep_seconds: float = 300.0
    # The change feed: how many events one page may scan past (so an empty page still moves the cursor on).
    change_scan_window: int = 10_000
    # Subscriptions: how often the change hub looks for commits whose notification it may have missed, how
    # long a slow consumer may keep a message (or the acknowledgement of the window before it) waiting
    # before the connection is closed (4420), and how many subscriptions one connection may hold.
    change_poll_seconds: float = 5.0
    subscription_send_timeout_seconds: float = 10.0
    subscription_close_grace_seconds: float = 10.0
    subscriptions_per_connection: int = 20
    subscription_page_size: int = 50
    # How much a live connection may send before its client has acknowledged reading it (a pong).
    subscription_window_bytes: int = 1_048_576
    # Webhooks: private, loopback and link-local destinations are refused unless their network is listed
    # (the demo lists loopback, so a receiver on this machine works); plain http only to those. Retries back
    # off exponentially with jitter from `base` up to `max_delay`, for `retry_window`, then the delivery is
    # dead-lettered; an endpoint failing for `disable_after` is disabled.
    webhook_allowed_networks: tuple[str, ...] = ()
    webhook_timeout_seconds: float = 10.0
    webhook_retry_base_seconds: float = 5.0
    webhook_retry_max_delay_seconds: float = 3600.0
    webhook_retry_window_seconds: float = 86_400.0
    webhook_disable_after_seconds: float = 86_400.0
    webhook_secret_overlap_seconds: float = 86_400.0
    webhook_batch_size: int = 100
    webhook_concurrency: int = 8
    audit_key_file: Path | None = None
    audit_archive_folder: Path | None = None
    # The HTTP edge: the largest request body (413 beyond it) and the largest `variables` object (its JSON).
    max_body_bytes: int = 1_048_576
    max_variables_bytes: int = 262_144
    # How long one request may take in all (504 DEADLINE_EXCEEDED beyond it); every statement it runs gets
    # what is left of it as its `statement_timeout`.
    request_deadline_seconds: float = 10.0
    # FHIR: a search page's size when `_count` is not given (at most `max_page_size`); Bulk Data exports read
    # this many patients' data at a time (what an export holds in memory), their files are deleted this long
    # after the export completed, and one app may run this many exports at once.
    fhir_page_size: int = 50
    export_patients_per_batch: int = 200
    export_expiry_seconds: float = 3600.0
    exports_per_app: int = 2
    # What a third-party app may spend unless its approval set its own budget: requests per minute (per app,
    # across every process), the cost of one request (see gateway/cost.py) and cost per minute. A person
    # has a budget of requests per minute of their own, whatever app they use.
    app_requests_per_minute: int = 1_200
    app_max_cost_per_request: int = 50_000
    app_cost_per_minute: int = 2_000_000
    user_requests_per_minute: int = 600
    # Trusted documents: third-party apps must send the id of an operation they registered, not query text.
    # Required outside demo mode unless AKSON_TRUSTED_DOCUMENTS=optional; the apps listed in
    # AKSON_FIRST_PARTY_APPS (in demo mode also the demo app, GraphiQL's) may always send text.
    trusted_documents_required: bool = False
    first_party_apps: tuple[str, ...] = ()
    # Schema introspection (`__schema`, `__type`): on in demo mode, off elsewhere unless AKSON_INTROSPECTION=on.
    introspection: bool = True
    # Rate-limit counters live in PostgreSQL, or in Redis when REDIS_URL is set.
    redis_url: str | None = None
    # The console outside demo mode signs people in with the OpenID Connect authorization-code flow (PKCE) at
    # the issuer, as this client (AKSON_CONSOLE_CLIENT_ID, registered there with the redirect URI
    # `<public URL>/console/callback`), asking for these scopes. The issuer's endpoints come from its
    # discovery document (AKSON_OIDC_CONFIGURATION_URL, by default under the issuer). The console is the
    # municipality's own app, so it is first-party.
    console_client_id: str | None = None
    console_scopes: str = "openid fhirUser launch/patient user/*.crus patient/*.rs"
    oidc_configuration_url: str | None = None

    @property
    def oidc_discovery_url(self) -> str:
        """Where the issuer's discovery document is (OpenID Connect Discovery 1.0, section 4)."""
        return self.oidc_configuration_url or f"{self.issuer.rstrip('/')}/.well-known/openid-configuration"

    def is_first_party(self, client_id: str) -> bool:
        """The municipality's own app (one listed, or the console): it may send query text, has no per-app budgets
        and reads from the whole pool."""
        return client_id in self.first_party_apps or client_id == self.console_client_id

    def production_problems(self) -> list[str]:
        """Why these settings are unsafe outside demo mode; empty when they are safe."""
        problems = []
        if not self.jwks_url:
            problems.append("AKSON_JWKS_URL is not set, so the gateway would trust the demo issuer's key")
        if self.audit_disabled_for_benchmark:
            problems.append("AKSON_BENCHMARK_WITHOUT_AUDIT=1 switches the audit log off")
        if not self.public_url:
            problems.append("AKSON_PUBLIC_URL is not set, so published URLs would have no trustworthy base")
        return problems

    @property
    def base_url(self) -> str:
        """The public URL; in demo mode without one, the address `akson serve` listens on by default."""
        return self.public_url or DEMO_BASE_URL

    @property
    def demo_key_path(self) -> Path:
        """Where the demo issuer keeps its signing key, shared by `akson token` and the gateway."""
        return self.data_dir / "demo-issuer" / "signing-key.json"

    @property
    def audit_key_path(self) -> Path:
        """The key that signs audit checkpoints and archive records (`AKSON_AUDIT_KEY_PATH`): keep it where
        the database's administrators cannot write."""
        return self.audit_key_file or self.data_dir / "audit" / "signing-key.json"

    @property
    def audit_archive_dir(self) -> Path:
        """Where `akson audit archive` writes months moved out of the database (`AKSON_AUDIT_ARCHIVE_DIR`)."""
        return self.audit_archive_folder or self.data_dir / "audit-archive"

    @property
    def embedded_pgdata(self) -> Path:
        """The embedded PostgreSQL server's data folder."""
        return self.data_dir / "pgdata"

    @property
    def export_dir(self) -> Path:
        """Where Bulk Data exports write their NDJSON files (shared storage when several processes serve)."""
        return self.data_dir / "exports"


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Read settings from the environment so that tests and `make run` configure the same way."""
    env = dict(os.environ if env is None else env)
    project = Path(env.get("AKSON_PROJECT_DIR", os.getcwd())).resolve()
    data_dir = Path(env.get("AKSON_DATA_DIR", str(project / ".data"))).resolve()
    exporter = env.get("OTEL_TRACES_EXPORTER", "none").strip().lower() or "none"
    if exporter not in {"none", "console", "otlp"}:
        raise ValueError(f"OTEL_TRACES_EXPORTER must be none, console or otlp, not {exporter!r}")
    demo = env.get("AKSON_DEMO") == "1"
    numbers: dict[str, Any] = {name: _positive(env, name) for name in _WHOLE_NUMBERS}
    numbers.update({name: _seconds(env, name) for name in _SECONDS})
    return Settings(
        project_dir=project,
        data_dir=data_dir,
        database_url=env.get("DATABASE_URL") or None,
        cerbos_url=env.get("CERBOS_URL") or None,
        policy_dir=Path(env.get("AKSON_POLICY_DIR", str(project / "policies"))).resolve(),
        cerbos_binary=Path(env.get("AKSON_CERBOS_BINARY", str(_cerbos_binary_default(project)))),
        issuer=env.get("AKSON_ISSUER", "https://demo-issuer.akson.invalid"),
        audience=env.get("AKSON_AUDIENCE", "akson-gateway"),
        jwks_url=env.get("AKSON_JWKS_URL") or None,
        jwks_min_refetch_seconds=float(env.get("AKSON_JWKS_MIN_REFETCH_SECONDS", "10")),
        claim_names=ClaimNames.from_json(env.get("AKSON_CLAIM_NAMES")),
        traces_exporter=exporter,
        audit_disabled_for_benchmark=env.get("AKSON_BENCHMARK_WITHOUT_AUDIT") == "1",
        demo=demo,
        public_url=_url(env, "AKSON_PUBLIC_URL"),
        webhook_allowed_networks=_networks(env, "AKSON_WEBHOOK_ALLOWED_NETWORKS"),
        trusted_documents_required=_choice(env, "AKSON_TRUSTED_DOCUMENTS", ("required", "optional"), demo)
        == "required",
        first_party_apps=tuple(a.strip() for a in env.get("AKSON_FIRST_PARTY_APPS", "").split(",") if a.strip())
        + ((DEMO_APP_CLIENT_ID,) if demo else ()),
        introspection=_choice(env, "AKSON_INTROSPECTION", ("off", "on"), demo) == "on",
        redis_url=env.get("REDIS_URL") or None,
        console_client_id=env.get("AKSON_CONSOLE_CLIENT_ID", "").strip() or None,
        console_scopes=" ".join(env.get("AKSON_CONSOLE_SCOPES", Settings.console_scopes).split()),
        oidc_configuration_url=_url(env, "AKSON_OIDC_CONFIGURATION_URL"),
        **numbers,
        audit_key_file=Path(env["AKSON_AUDIT_KEY_PATH"]).resolve() if env.get("AKSON_AUDIT_KEY_PATH") else None,
        audit_archive_folder=(
            Path(env["AKSON_AUDIT_ARCHIVE_DIR"]).resolve() if env.get("AKSON_AUDIT_ARCHIVE_DIR") else None
        ),
    )


# Settings read from `AKSON_<FIELD>` (upper case), defaulting to the field's default above.
_WHOLE_NUMBERS = (
    "graphql_max_depth",
    "graphql_max_tokens",
    "graphql_max_aliases",
    "graphql_max_selections",
    "database_pool_size",
    "change_scan_window",
    "subscriptions_per_connection",
    "subscription_page_size",
    "subscription_window_bytes",
    "webhook_batch_size",
    "webhook_concurrency",
    "max_body_bytes",
    "max_variables_bytes",
    "app_requests_per_minute",
    "app_max_cost_per_request",
    "app_cost_per_minute",
    "user_requests_per_minute",
)
_SECONDS = (
    "pdp_reconnect_seconds",
    "change_poll_seconds",
    "subscription_send_timeout_seconds",
    "subscription_close_grace_seconds",
    "webhook_timeout_seconds",
    "webhook_retry_base_seconds",
    "webhook_retry_max_delay_seconds",
    "webhook_retry_window_seconds",
    "webhook_disable_after_seconds",
    "webhook_secret_overlap_seconds",
    "request_deadline_seconds",
)


def _variable(field: str) -> tuple[str, str]:
    """The environment variable of a setting, and the text of its default."""
    return f"AKSON_{field.upper()}", str(Settings.__dataclass_fields__[field].default)


def _positive(env: dict[str, str], field: str) -> int:
    name, default = _variable(field)
    raw = env.get(name, default)
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{name} must be a whole number of at least 1, not {raw!r}")
    return int(raw)


def _seconds(env: dict[str, str], field: str) -> float:
    name, default = _variable(field)
    raw = env.get(name, default)
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ValueError(f"{name} must be a positive number of seconds, not {raw!r}")
    return seconds


def _choice(env: dict[str, str], name: str, values: tuple[str, str], demo: bool) -> str:
    """One of two values; unset, the first outside demo mode and the second in it."""
    raw = env.get(name, "").strip().lower() or values[1 if demo else 0]
    if raw not in values:
        raise ValueError(f"{name} must be {values[0]} or {values[1]}, not {raw!r}")
    return raw


def _url(env: dict[str, str], name: str) -> str | None:
    """An http(s) base URL without query or trailing slash, checked here so a typo fails at start-up."""
    raw = env.get(name, "").strip()
    if not raw:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in {"http", "https"} or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"{name} must be an http(s) URL such as https://akson.example.no, not {raw!r}")
    return raw.rstrip("/")


def _networks(env: dict[str, str], name: str) -> tuple[str, ...]:
    """A comma-separated list of IP networks (CIDR), each checked here so a typo fails at start-up."""
    networks = []
    for raw in env.get(name, "").split(","):
        if raw.strip():
            try:
                networks.append(str(ipaddress.ip_network(raw.strip(), strict=False)))
            except ValueError as exc:
                raise ValueError(f"{name} must list IP networks such as 127.0.0.0/8, not {raw.strip()!r}") from exc
    return tuple(networks)
