"""Tracing: one trace per request with HTTP, GraphQL, Cerbos and SQL spans, and no patient data,
query text, variables or tokens in any span."""

from __future__ import annotations

import json
import time
from typing import Any

from gateway.personas import CITIZEN_PATIENT_ID, PERSONAS
from tests.conftest import CITIZEN, Gateway


def spans_of_trace(gateway: Gateway, trace_id: str) -> list[dict[str, Any]]:
    """Spans the console exporter wrote for one trace (exported as each span ends)."""
    decoder = json.JSONDecoder()
    deadline = time.monotonic() + 5
    while True:
        text = gateway.log_path.read_text(errors="replace")
        spans, index = [], 0
        while (start := text.find("{", index)) != -1:
            try:
                obj, index = decoder.raw_decode(text, start)
            except json.JSONDecodeError:
                index = start + 1
                continue
            if isinstance(obj, dict) and obj.get("context", {}).get("trace_id") == f"0x{trace_id}":
                spans.append(obj)
        if any(s["parent_id"] is None for s in spans) or time.monotonic() > deadline:
            return spans
        time.sleep(0.1)


def test_a_request_is_one_trace_with_http_graphql_cerbos_and_sql_spans_and_no_patient_data(
    gateway: Gateway,
) -> None:
    token = gateway.token("homecare-nurse")
    query = (
        "query Lookup($id: ID!) { patient(id: $id) { nationalIdentityNumber name { text } } "
        "patients(first: 3) { totalCount } }"
    )
    response = gateway.post(query, token=token, variables={"id": CITIZEN})
    assert response.status_code == 200 and "errors" not in response.json()
    [row] = gateway.fetch(
        "SELECT DISTINCT trace_id FROM audit_event WHERE request_id = (SELECT request_id FROM audit_event "
        "WHERE patient_id = $1 AND reason = 'CARE_RELATION' ORDER BY id DESC LIMIT 1)",
        CITIZEN_PATIENT_ID,
    )
    spans = spans_of_trace(gateway, row["trace_id"])
    print("\n".join(f"{s['name']} {s['attributes']}" for s in spans))
    names = [s["name"] for s in spans]
    assert any(s["parent_id"] is None and s["kind"] == "SpanKind.SERVER" for s in spans), names
    assert "graphql.query Lookup" in names
    assert "cerbos.CheckResources" in names and "cerbos.PlanResources" in names
    sql = [s for s in spans if "db.statement" in s["attributes"] or "db.query.text" in s["attributes"]]
    assert len(sql) >= 3, names

    dumped = json.dumps(spans)
    secrets = [
        token,
        token.split(".")[1],
        PERSONAS["citizen"].national_id,
        str(CITIZEN_PATIENT_ID),
        CITIZEN,
        "Nordmann",
        "nationalIdentityNumber",
        PERSONAS["homecare-nurse"].national_id,
    ]
    for secret in secrets:
        assert secret and secret not in dumped, f"span data leaks {secret[:12]}..."
