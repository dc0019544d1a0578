"""A home-care visit app: today's visits of the nurse's unit, then one visit documented in the shared journal.

It lists the unit's appointments for today, opens an encounter for the first one, records blood pressure
and pulse, and closes the encounter. Every create carries an idempotency key, so a request that is sent
again after a lost answer (a visit app on a mobile network does this) returns the first result and writes
nothing twice: the app retries its first measurement on purpose to show it.

Usage:
  AKSON_TOKEN=$(.venv/bin/akson token --persona homecare-nurse | tail -1) python examples/homecare_visit.py
Environment: AKSON_URL (default http://127.0.0.1:8000), AKSON_UNIT (the unit's global id; default the
demo nurse's home care unit), AKSON_DAY (YYYY-MM-DD; default today, UTC).
"""

from __future__ import annotations

import base64
import os
import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx

URL = os.environ.get("AKSON_URL", "http://127.0.0.1:8000") + "/graphql"
DEMO_HOME_CARE = base64.b64encode(b"Organization:0a9e7a31-0000-4000-8000-000000000011").decode()
TODAY = """query($unit: ID!, $from: DateTime!, $to: DateTime!) {
  appointments(first: 20, order: OLDEST_FIRST,
               filter: {organizationId: $unit, startFrom: $from, startTo: $to, status: BOOKED}) {
    edges { node { id start serviceType patient { id name { text } } } } } }"""
OPEN = """mutation($input: EncounterInput!, $k: String) {
  createEncounter(input: $input, idempotencyKey: $k) { id version status } }"""
MEASURE = """mutation($input: ObservationInput!, $k: String) {
  createObservation(input: $input, idempotencyKey: $k) { id code { display } valueQuantity { value unit } } }"""
CLOSE = """mutation($id: ID!, $v: Int!, $end: DateTime!, $start: DateTime!) {
  updateEncounter(id: $id, expectedVersion: $v, input: {status: FINISHED, period: {start: $start, end: $end}}) {
    id version status } }"""
VITALS = [("8480-6", 138.0), ("8462-4", 84.0), ("8867-4", 72.0)]


class Refused(Exception):
    """The gateway said no: the error's code and reason."""


def call(client: httpx.Client, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    """One GraphQL request; any error ends the visit with the gateway's explanation."""
    body: dict[str, Any] = client.post(URL, json={"query": query, "variables": variables}).json()
    for error in body.get("errors", []):
        ext = error["extensions"]
        raise Refused(f"{ext['code']} ({ext.get('reason') or ext.get('argument') or '-'}): {error['message']}")
    data: dict[str, Any] = body["data"]
    return data


def main() -> int:
    token = os.environ.get("AKSON_TOKEN")
    if not token:
        print(__doc__, file=sys.stderr)
        return 2
    day = date.fromisoformat(os.environ.get("AKSON_DAY", datetime.now(UTC).date().isoformat()))
    start_of_day = datetime(day.year, day.month, day.day, tzinfo=UTC)
    unit = os.environ.get("AKSON_UNIT", DEMO_HOME_CARE)
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        try:
            visits = call(
                client,
                TODAY,
                {"unit": unit, "from": start_of_day.isoformat(), "to": (start_of_day + timedelta(days=1)).isoformat()},
            )["appointments"]["edges"]
            for edge in visits:
                visit = edge["node"]
                print(f"{visit['start'][11:16]} {visit['serviceType']}: {visit['patient']['name']['text']}")
            if not visits:
                print("no visits booked for today", file=sys.stderr)
                return 0
            visit = visits[0]["node"]
            patient = visit["patient"]["id"]
            arrived = datetime.now(UTC).replace(microsecond=0)
            # One key per write this visit makes, kept until the write is known to have landed.
            keys = {name: f"visit-{visit['id']}-{name}-{uuid.uuid4().hex[:8]}" for name in ("open", *dict(VITALS))}
            opened = call(
                client,
                OPEN,
                {
                    "input": {"patientId": patient, "class": "HH", "period": {"start": arrived.isoformat()}},
                    "k": keys["open"],
                },
            )["createEncounter"]
            print(f"encounter opened ({opened['status'].lower()})")
            for loinc, amount in VITALS:
                measurement = {
                    "input": {
                        "patientId": patient,
                        "encounterId": opened["id"],
                        "code": {"system": "http://loinc.org", "code": loinc},
                        "valueQuantity": {"value": amount},
                        "effectiveDateTime": arrived.isoformat(),
                    },
                    "k": keys[loinc],
                }
                made = call(client, MEASURE, measurement)["createObservation"]
                quantity = made["valueQuantity"]
                print(f"recorded {made['code']['display']}: {quantity['value']:g} {quantity['unit']}")
                if loinc == VITALS[0][0]:
                    again = call(client, MEASURE, measurement)["createObservation"]
                    same = "the same" if again["id"] == made["id"] else "ANOTHER"
                    print(f"retried the first measurement: {same} observation, nothing written twice")
            closed = call(
                client,
                CLOSE,
                {
                    "id": opened["id"],
                    "v": opened["version"],
                    "start": arrived.isoformat(),
                    "end": datetime.now(UTC).isoformat(),
                },
            )["updateEncounter"]
            print(f"encounter {closed['status'].lower()} (version {closed['version']})")
        except Refused as refused:
            print(f"refused: {refused}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
