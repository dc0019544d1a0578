"""Which token claims carry what: HelseID's names by default, configurable per issuer.

`AKSON_CLAIM_NAMES` (JSON) overrides any of them, e.g. `{"launch_patient": "https://example/patient"}`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import orjson


@dataclass(frozen=True)
class ClaimNames:
    """Claim names for each thing the gateway reads from an access token."""

    personnel_pid: str = "helseid://claims/identity/pid"
    hpr_number: str = "helseid://claims/hpr/hpr_number"
    security_level: str = "helseid://claims/identity/security_level"
    citizen_pid: str = "pid"
    purpose_of_use: str = "purpose_of_use"
    self_attested: str = "self_attested"
    launch_patient: str = "patient"
    client_id: str = "client_id"
    scope: str = "scope"

    @classmethod
    def from_json(cls, text: str | None) -> ClaimNames:
        """Defaults overridden by a JSON object of {field: claim name}; unknown fields are an error."""
        if not text:
            return cls()
        overrides = orjson.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(overrides, dict) or not set(overrides) <= known:
            raise ValueError(f"AKSON_CLAIM_NAMES must be a JSON object with keys among {sorted(known)}")
        return dataclasses.replace(cls(), **{k: str(v) for k, v in overrides.items()})
