"""The GP's lab-result notifier: it subscribes to new diagnostic reports and prints each as the laboratory
delivers it.

The subscription asks for every report; policy decides which it gets: those of the GP's own patients, as
the journal stands at each delivery (a patient who left the practice, or blocked the GP, sends nothing
more). It speaks graphql-transport-ws with the `gql` client, authenticates in `connection_init`, and keeps
the cursor of the last report it printed, so that a restart from that cursor (AKSON_AFTER) catches up on
what arrived while it was away, each report once.

Usage (with `make run` serving the demo on :8000):
  AKSON_TOKEN=$(.venv/bin/akson token --persona gp | tail -1) python examples/lab_result_notifier.py
then, in another shell, let the laboratory deliver (examples/lab_delivery.py). AKSON_NOTIFY_COUNT=N stops
after N reports; the last line printed is the cursor to resume from.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportClosed, TransportQueryError
from gql.transport.websockets import WebsocketsTransport

URL = os.environ.get("AKSON_URL", "http://127.0.0.1:8000").replace("http", "ws", 1) + "/graphql"
REPORTS = """subscription($after: String) { changes(kinds: [DIAGNOSTIC_REPORT], after: $after) {
  cursor action committedAt
  node { ... on DiagnosticReport { code { display } status conclusion patient { name { text } }
    results(first: 10) { edges { node { code { display } valueQuantity { value unit } } } } } } } }"""


def describe(change: dict[str, Any]) -> str:
    """One report as the GP reads it: patient, test, conclusion and results."""
    report = change["node"]
    results = ", ".join(
        f"{r['node']['code']['display']} {r['node']['valueQuantity']['value']:g} {r['node']['valueQuantity']['unit']}"
        for r in report["results"]["edges"]
        if r["node"]["valueQuantity"]
    )
    return (
        f"{change['committedAt'][:19]} {change['action'].lower()}: {report['patient']['name']['text']}, "
        f"{report['code']['display']} ({report['status'].lower()}): {report['conclusion'] or '-'}"
        + (f" [{results}]" if results else "")
    )


async def follow(token: str, after: str | None, count: int | None) -> str | None:
    transport = WebsocketsTransport(
        url=URL,
        init_payload={"Authorization": f"Bearer {token}"},
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
    )
    cursor = after
    async with Client(transport=transport) as session:
        print("listening for lab results", flush=True)
        async for result in session.subscribe(GraphQLRequest(REPORTS, variable_values={"after": after})):
            change = result["changes"]
            print(describe(change), flush=True)
            cursor = change["cursor"]
            if count is not None:
                count -= 1
                if count == 0:
                    break
    return cursor


def main() -> int:
    token = os.environ.get("AKSON_TOKEN")
    if not token:
        print(__doc__, file=sys.stderr)
        return 2
    count = int(os.environ["AKSON_NOTIFY_COUNT"]) if os.environ.get("AKSON_NOTIFY_COUNT") else None
    try:
        cursor = asyncio.run(follow(token, os.environ.get("AKSON_AFTER"), count))
    except TransportQueryError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 1
    except TransportClosed as exc:
        print(f"the gateway closed the connection: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    if cursor:
        print(cursor)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
