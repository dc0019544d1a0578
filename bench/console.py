"""What the console costs over the API it asks: each console page as the persona it is for, beside the same
GraphQL request sent straight to /graphql with that persona's token, on one demo journal, in alternating
rounds in one run.

A console page is a signed-in session looked up, the page's GraphQL request executed in process with the
person's token (policy and audit as for any client), and a Jinja2 template rendered. The difference between
the two columns is that overhead; the API column is what the page cannot do without. The emergency page (one
grant waiting, opened by the GP at the start) asks two requests, the grants waiting and then what was read
under them, and is timed as a page only.

Requests are sequential (one person at a console), from this process, over HTTP. Prints a line per page with
the medians and their ratio, and `CONSOLE_PAGES median_ms=...` for the slowest page.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from bench.scratch import Gateway, scratch_journal
from gateway.console import APPS, DENIALS, EXPLAIN, LOG, LOG_DAYS, MY_LOG, aliased
from gateway.personas import CITIZEN_PATIENT_ID, PERSONAS
from gateway.store import global_id_of

WORK = Path(__file__).resolve().parent / ".work" / "console"
# One emergency access waiting for review, so that the emergency page has a grant and what was read under it.
EMERGENCY = """mutation($patient: ID!) { requestEmergencyAccess(patientId: $patient,
  reason: "Akutt forverring, benchmark", lifeOrHealthAtRisk: true) { id } }"""


def signed_in(client: httpx.Client, persona: str) -> str:
    """The console's session cookie for `persona`, signed in through the persona picker as a browser would."""
    form = client.get("/console/sign-in")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None, "the sign-in page carries a CSRF token"
    cookie = form.headers["set-cookie"].split(";")[0]
    done = client.post("/console/sign-in", data={"persona": persona, "csrf": csrf.group(1)}, headers={"Cookie": cookie})
    assert done.status_code == 303, done.text[:300]
    return done.headers["set-cookie"].split(";")[0]


def timed(call: Callable[[], httpx.Response], times: int, check: Callable[[httpx.Response], bool]) -> list[float]:
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        response = call()
        samples.append((time.perf_counter() - started) * 1000)
        if not check(response):
            raise SystemExit(f"bad response {response.status_code}: {response.text[:300]}")
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=1000, help="the demo journal's size (make run's)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=20, help="per page and per round")
    args = parser.parse_args()
    now = datetime.now(UTC)
    today = datetime.combine(now.date(), datetime.min.time(), UTC)
    days = [today - timedelta(days=13 - i) for i in range(14)]
    blocking_query, blocking_variables = aliased(
        DENIALS,
        [{"from": d.isoformat(), "to": (d + timedelta(days=1)).isoformat()} for d in days],
        {"from": "DateTime!", "to": "DateTime!"},
    )
    citizen = global_id_of("Patient", CITIZEN_PATIENT_ID)
    secretary = global_id_of("Practitioner", PERSONAS["health-secretary"].entity_id)
    week = {
        "recordedFrom": (today - timedelta(days=7)).isoformat(),
        "recordedTo": (today + timedelta(days=1)).isoformat(),
    }
    # (name, persona, console path, the GraphQL the page asks: query and variables, or None)
    pages: list[tuple[str, str, str, tuple[str, dict[str, Any]] | None]] = [
        ("apps", "policy-admin", "/console/apps", (APPS, {})),
        ("emergency", "compliance-officer", "/console/emergency", None),
        (
            "access log",
            "compliance-officer",
            f"/console/log?from={days[-8].date()}&to={today.date()}&patient={citizen}",
            (LOG, {"filter": {**week, "patientId": citizen}, "after": None}),
        ),
        ("blocking", "policy-admin", "/console/blocking?days=14", (blocking_query, blocking_variables)),
        (
            "explain",
            "policy-admin",
            f"/console/explain?person={secretary}&resource={citizen}&action=read",
            (EXPLAIN, {"person": secretary, "resource": citizen, "action": "read"}),
        ),
        (
            "my log",
            "citizen",
            "/console/my-log",
            (
                MY_LOG,
                {
                    "patient": citizen,
                    "from": (today - timedelta(days=LOG_DAYS)).isoformat(),
                    "to": (today + timedelta(days=1)).isoformat(),
                    "after": None,
                },
            ),
        ),
    ]
    with scratch_journal(WORK, args.patients, "akson_bench_console") as url:
        gateway = Gateway(url, WORK / "gateway")
        try:
            with httpx.Client(base_url=gateway.base, timeout=60) as client:
                opened = client.post(
                    "/graphql",
                    json={"query": EMERGENCY, "variables": {"patient": citizen}},
                    headers={"Authorization": f"Bearer {gateway.token('gp')}"},
                )
                assert "errors" not in opened.json(), opened.text[:300]
                cookies = {persona: signed_in(client, persona) for _, persona, _, _ in pages}
                tokens = {persona: gateway.token(persona) for _, persona, _, _ in pages}
                page_ms: dict[str, list[float]] = {name: [] for name, *_ in pages}
                api_ms: dict[str, list[float]] = {name: [] for name, *_ in pages}

                def page_ok(r: httpx.Response) -> bool:
                    return r.status_code == 200 and 'role="alert"' not in r.text

                def api_ok(r: httpx.Response) -> bool:
                    return r.status_code == 200 and "errors" not in r.json()

                print(
                    f"{args.patients} patients; {args.rounds} rounds of {args.requests} sequential requests per page "
                    "and per API request, alternating"
                )
                for i in range(args.rounds + 1):  # the first round warms up and is not counted
                    for name, persona, path, asked in pages:
                        headers = {"Cookie": cookies[persona]}
                        got = timed(partial(client.get, path, headers=headers), args.requests, page_ok)
                        if asked is not None:
                            body = {"query": asked[0], "variables": asked[1]}
                            auth = {"Authorization": f"Bearer {tokens[persona]}"}
                            direct = timed(
                                partial(client.post, "/graphql", json=body, headers=auth), args.requests, api_ok
                            )
                            if i:
                                api_ms[name] += direct
                        if i:
                            page_ms[name] += got
                print(f"{'page':<12} {'persona':<20} {'page p50':>9} {'API p50':>9} {'page/API':>9} {'page p95':>9}")
                for name, persona, _, _ in pages:
                    p50 = statistics.median(page_ms[name])
                    p95 = statistics.quantiles(page_ms[name], n=20)[-1]
                    api = statistics.median(api_ms[name]) if api_ms[name] else None
                    api_text = f"{api:8.1f}ms" if api else f"{'-':>9}"
                    ratio = f"{p50 / api:8.2f}x" if api else f"{'-':>9}"
                    print(f"{name:<12} {persona:<20} {p50:7.1f}ms {api_text} {ratio} {p95:7.1f}ms")
                slowest = max(pages, key=lambda p: statistics.median(page_ms[p[0]]))[0]
                print(f"CONSOLE_PAGES median_ms={statistics.median(page_ms[slowest]):.1f} slowest={slowest!r}")
        finally:
            gateway.stop()


if __name__ == "__main__":
    main()
