"""Tracing: one trace per request with HTTP, GraphQL, Cerbos and SQL spans, and no patient data,
query text, variables or tokens in any span."""

from __future__ import annotations

import json

from gateway.personas import CITIZEN_PATIENT_ID, PERSONAS
from tests.conftest import CITIZEN, Gateway


def test_a_request_is_one_trace_with_http_graphql_cerbos_and_sql_spans_and_no_patient_data(
    gateway: Gateway,
) -> None:
    token = gateway.token("homecare-nurse", purpose_of_use="COC")  # a principal whose query plan is not cached yet
    query = (
        "query Lookup($id: ID!) { patient(id: $id) { nationalIdentityNumber name { text } } "
        "patients(first: 3) { totalCount } }"
    )
    response = gateway.post(query, token=token, variables={"id": CITIZEN})
    assert response.status_code == 200 and "errors" not in response.json()
    trace_id = response.headers["x-trace-id"]
    audited = gateway.fetch("SELECT DISTINCT trace_id FROM audit_event WHERE trace_id = $1", trace_id)
    assert len(audited) == 1, "the audit records of the request carry its trace id"
    spans = gateway.spans(trace_id)
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
        assert secret, "every secret looked for is known"
        assert secret not in dumped, f"span data leaks {secret[:12]}..."
