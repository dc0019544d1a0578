"""Settings from the environment, read once at start-up.

Every knob the gateway has is here, with its environment variable and default, so an operator finds
them in one place. Paths default to folders of the project checkout (the working directory).
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

from gateway.claims import ClaimNames


def _cerbos_binary_default(project: Path) -> Path:
    system = platform.system().lower()
    machine = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower(), platform.machine().lower()
    )
    name = f"cerbos-{system}-{machine}"
    return project / "node_modules" / "@cerbos" / name / name


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
    audit_disabled_for_benchmark: bool = False
    # Connections per worker. Few statements at once keep PostgreSQL fastest when it shares the gateway's
    # cores: on 2 cores, 3 per worker answered Q2 at c32 faster than 10 (bench/PROFILE.md).
    database_pool_size: int = 3

    @property
    def demo_key_path(self) -> Path:
        """Where the demo issuer keeps its signing key, shared by `akson token` and the gateway."""
        return self.data_dir / "demo-issuer" / "signing-key.json"

    @property
    def embedded_pgdata(self) -> Path:
        """The embedded PostgreSQL server's data folder."""
        return self.data_dir / "pgdata"


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Read settings from the environment so that tests and `make run` configure the same way."""
    env = dict(os.environ if env is None else env)
    project = Path(env.get("AKSON_PROJECT_DIR", os.getcwd())).resolve()
    data_dir = Path(env.get("AKSON_DATA_DIR", str(project / ".data"))).resolve()
    exporter = env.get("OTEL_TRACES_EXPORTER", "none").strip().lower() or "none"
    if exporter not in {"none", "console", "otlp"}:
        raise ValueError(f"OTEL_TRACES_EXPORTER must be none, console or otlp, not {exporter!r}")
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
        database_pool_size=_positive(env, "AKSON_DATABASE_POOL_SIZE", 3),
    )


def _positive(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name, str(default))
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{name} must be a whole number of at least 1, not {raw!r}")
    return int(raw)
