"""A vendor app's view of one patient: the whole journal in a single nested GraphQL query.

Usage:
  AKSON_TOKEN=$(.venv/bin/akson token --persona homecare-nurse | tail -1) \\
    python examples/patient_journal.py UGF0aWVudDphMTFjZTAwMC0wMDAwLTQwMDAtODAwMC0wMDAwMDAwMDAyMDE=
The id is a patient's global id (`akson personas` shows the demo citizen's). Whatever policy hides
is simply absent; a patient you may not read gives a FORBIDDEN error with its reason.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import httpx

URL = os.environ.get("AKSON_URL", "http://127.0.0.1:8000") + "/graphql"
QUERY = """
query Journal($id: ID!) {
  patient(id: $id) {
    name { text } birthDate
    allergyIntolerances(first: 20) { edges { node { code { display } criticality } } }
    conditions(first: 20, filter: {clinicalStatus: ACTIVE}) { edges { node { code { code display } } } }
    medicationStatements(first: 20, filter: {status: ACTIVE}) { edges { node { medication { display } dosage } } }
    carePlans(first: 5) { edges { node { title description } } }
    encounters(first: 3) { edges { node { class period { start } participant { name { text } }
      observations(first: 10, filter: {category: VITAL_SIGNS}) {
        edges { node { code { display } valueQuantity { value unit } } } } } } }
    appointments(first: 3, filter: {status: BOOKED}) { edges { node { start description } } }
  }
}
"""


def nodes(connection: dict[str, Any]) -> list[dict[str, Any]]:
    return [edge["node"] for edge in connection["edges"]]


def main(argv: list[str]) -> int:
    token = os.environ.get("AKSON_TOKEN")
    if not token or len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    response = httpx.post(
        URL,
        json={"query": QUERY, "variables": {"id": argv[1]}},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    body = response.json()
    for error in body.get("errors", []):
        ext = error["extensions"]
        print(f"{ext['code']} ({ext.get('reason', '-')}): {error['message']}", file=sys.stderr)
    patient = (body.get("data") or {}).get("patient")
    if patient is None:
        return 1
    print(f"{patient['name']['text']}, born {patient['birthDate']}")
    for a in nodes(patient["allergyIntolerances"]):
        print(f"  ALLERGY {a['code']['display']} ({a['criticality'].lower()})")
    for c in nodes(patient["conditions"]):
        print(f"  condition {c['code']['code']} {c['code']['display']}")
    for m in nodes(patient["medicationStatements"]):
        print(f"  medicine {m['medication']['display']}: {m['dosage']}")
    for p in nodes(patient["carePlans"]):
        print(f"  plan {p['title']}: {p['description']}")
    for e in nodes(patient["encounters"]):
        vitals = ", ".join(
            f"{o['code']['display']} {o['valueQuantity']['value']} {o['valueQuantity']['unit']}"
            for o in nodes(e["observations"])
        )
        print(f"  {e['period']['start'][:16]} {e['class']} with {e['participant']['name']['text']}: {vitals or '-'}")
    for a in nodes(patient["appointments"]):
        print(f"  next appointment {a['start'][:16]}: {a['description']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
