"""A laboratory delivers a result panel to the shared journal: a backend service with no user.

The hospital laboratory's service knows the patient by national identity number and the requester by the
requisition. It delivers a blood count (the report and its results in one transaction, with an
idempotency key so a resend after a lost answer delivers nothing twice) and reads back what it delivered:
the only thing it may read. The requesting GP then finds the report in the patient's journal.

Usage:
  AKSON_TOKEN=$(.venv/bin/akson token --persona lab-service | tail -1) \\
    python examples/lab_delivery.py NATIONAL_ID REQUESTER_PRACTITIONER_ID
The national identity number is the patient's (11 digits); the requester is a practitioner's global id.
"""

from __future__ import annotations

import os
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

URL = os.environ.get("AKSON_URL", "http://127.0.0.1:8000") + "/graphql"
DELIVER = """mutation($input: DiagnosticReportInput!, $k: String) {
  createDiagnosticReport(input: $input, idempotencyKey: $k) {
    id status issued results(first: 20) { totalCount edges { node { code { display } valueQuantity { value unit } } } }
  } }"""
READ_BACK = """query($id: ID!) { node(id: $id) { ... on DiagnosticReport { conclusion version } } }"""
PANEL = [("718-7", 13.9), ("6690-2", 6.1), ("777-3", 245.0)]


def main(argv: list[str]) -> int:
    token = os.environ.get("AKSON_TOKEN")
    if not token or len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    national_id, requester = argv[1], argv[2]
    taken = datetime.now(UTC).replace(microsecond=0).isoformat()
    delivery = {
        "input": {
            "patientNationalIdentityNumber": national_id,
            "requesterId": requester,
            "code": {"system": "http://loinc.org", "code": "58410-2"},
            "effectiveDateTime": taken,
            "conclusion": "Normal blodstatus.",
            "results": [
                {"code": {"system": "http://loinc.org", "code": loinc}, "valueQuantity": {"value": amount}}
                for loinc, amount in PANEL
            ],
        },
        "k": f"lab-requisition-{uuid.uuid4()}",
    }
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        body: dict[str, Any] = client.post(URL, json={"query": DELIVER, "variables": delivery}).json()
        if body.get("errors"):
            ext = body["errors"][0]["extensions"]
            print(f"refused: {ext['code']} ({ext.get('reason') or ext.get('argument') or '-'})", file=sys.stderr)
            return 1
        report = body["data"]["createDiagnosticReport"]
        print(f"delivered {report['id']} with {report['results']['totalCount']} results")
        for edge in report["results"]["edges"]:
            result = edge["node"]
            print(
                f"  {result['code']['display']}: {result['valueQuantity']['value']:g} {result['valueQuantity']['unit']}"
            )
        resent = client.post(URL, json={"query": DELIVER, "variables": delivery}).json()
        same = resent["data"]["createDiagnosticReport"]["id"] == report["id"]
        print(f"resent: {'the same report, nothing delivered twice' if same else 'A SECOND REPORT'}")
        back = client.post(URL, json={"query": READ_BACK, "variables": {"id": report["id"]}}).json()
        print(f"read back: {back['data']['node']['conclusion']} (version {back['data']['node']['version']})")
    print(report["id"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
