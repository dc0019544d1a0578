"""Export one municipality's journal data with FHIR Bulk Data, and print how many resources of each type.

    AKSON_TOKEN=$(.venv/bin/akson token --persona homecare-integration | tail -1) \\
        python examples/municipal_export.py Fjordvik [output-folder]

The municipality is found as a FHIR Group by name; its export is kicked off (`Prefer: respond-async`), its
status polled as the server asks (Retry-After, X-Progress), and each NDJSON file streamed to the output folder
(./export-<municipality> by default) without holding it in memory. What the export holds is what the token's
policy lets it search, nothing more. AKSON_URL is the gateway (http://127.0.0.1:8000 by default).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import httpx

BASE = os.environ.get("AKSON_URL", "http://127.0.0.1:8000") + "/fhir/R4"


def find_municipality(client: httpx.Client, name: str) -> str | None:
    """The Group id of the municipality with this name, with or without "kommune" (units are Groups too; they
    have a managing entity)."""
    bundle = client.get(f"{BASE}/Group", params={"name": name}).raise_for_status().json()
    wanted = {name.casefold(), f"{name} kommune".casefold()}
    for entry in bundle.get("entry", []):
        group = entry["resource"]
        if group["name"].casefold() in wanted and "managingEntity" not in group:
            return str(group["id"])
    return None


def wait_for(client: httpx.Client, status_url: str) -> dict[str, object]:
    """Poll the export's status until its manifest is ready, printing its progress."""
    while True:
        polled = client.get(status_url)
        if polled.status_code == 200:
            manifest: dict[str, object] = polled.json()
            return manifest
        if polled.status_code != 202:
            raise SystemExit(f"the export failed: {polled.status_code} {polled.text}")
        print(f"  {polled.headers.get('x-progress', 'in progress')}", file=sys.stderr)
        time.sleep(float(polled.headers.get("retry-after", "1")))


def main(argv: list[str]) -> int:
    token = os.environ.get("AKSON_TOKEN")
    if not token or len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    name = argv[1]
    out = Path(argv[2] if len(argv) == 3 else f"export-{name.lower()}")
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}
    with httpx.Client(headers=headers, timeout=60) as client:
        group = find_municipality(client, name)
        if group is None:
            print(f"no municipality called {name}", file=sys.stderr)
            return 1
        started = time.monotonic()
        kicked = client.get(f"{BASE}/Group/{group}/$export", headers={"Prefer": "respond-async"})
        if kicked.status_code != 202:
            print(f"refused: {kicked.status_code} {kicked.text}", file=sys.stderr)
            return 1
        manifest = wait_for(client, kicked.headers["content-location"])
        out.mkdir(parents=True, exist_ok=True)
        outputs = manifest["output"]
        assert isinstance(outputs, list)
        for item in outputs:
            lines = 0
            with client.stream("GET", item["url"]) as response, (out / f"{item['type']}.ndjson").open("wb") as file:
                response.raise_for_status()
                for chunk in response.iter_bytes():
                    lines += chunk.count(b"\n")
                    file.write(chunk)
            print(f"{item['type']:<20} {lines:>9}")
        print(f"{name}: {len(outputs)} types in {time.monotonic() - started:.1f} s, written to {out}/", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
