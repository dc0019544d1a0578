"""A minimal vendor app: page through every patient the signed-in clinician may see.

Usage: AKSON_TOKEN=$(.venv/bin/akson token --persona homecare-nurse | tail -1) python examples/list_patients.py
Shows keyset paging with `after`, `totalCount`, and how a typed error looks to a client.
"""

from __future__ import annotations

import os
import sys

import httpx

URL = os.environ.get("AKSON_URL", "http://127.0.0.1:8000") + "/graphql"
PAGE_SIZE = int(os.environ.get("AKSON_PAGE_SIZE", "50"))
QUERY = """
query Patients($first: Int!, $after: String) {
  patients(first: $first, after: $after) {
    totalCount
    edges { node { id name { text } birthDate } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


def main() -> int:
    token = os.environ.get("AKSON_TOKEN")
    if not token:
        print("set AKSON_TOKEN (see the usage line in this file)", file=sys.stderr)
        return 2
    headers = {"Authorization": f"Bearer {token}"}
    after: str | None = None
    seen = 0
    with httpx.Client(headers=headers, timeout=30) as client:
        while True:
            response = client.post(URL, json={"query": QUERY, "variables": {"first": PAGE_SIZE, "after": after}})
            body = response.json()
            if response.status_code != 200 or body.get("errors"):
                for error in body.get("errors", []):
                    print(f"error {error['extensions']['code']}: {error['message']}", file=sys.stderr)
                return 1
            page = body["data"]["patients"]
            for edge in page["edges"]:
                node = edge["node"]
                print(f"{node['id']}  {node['birthDate']}  {node['name']['text']}")
            seen += len(page["edges"])
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
    print(f"{seen} of {page['totalCount']} patients", file=sys.stderr)
    return 0 if seen == page["totalCount"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
