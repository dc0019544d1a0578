"""A backend service that learns of journal changes by webhook: home care's integration hears of new
measurements and results, and of changed appointments, of the unit's patients.

It registers a webhook endpoint for itself (the secret is shown once, so it keeps it), then serves that
endpoint. Each message is checked with the Standard Webhooks library (signature, timestamp), answered at
once, and handled once per `webhook-id` (retries repeat the id). The message names the change and carries
no patient data: the service fetches the resource through the API with its own token, so the policy
decides again, at fetch time, what it may see.

Usage (with `make run` serving the demo on :8000):
  AKSON_TOKEN=$(.venv/bin/akson token --persona homecare-integration | tail -1) \\
    python examples/webhook_receiver.py [PORT]
It runs until interrupted (or until nothing came for AKSON_RECEIVE_SECONDS seconds), printing each change it
fetched, and disables its endpoint when it stops.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from standardwebhooks import Webhook, WebhookVerificationError

URL = os.environ.get("AKSON_URL", "http://127.0.0.1:8000") + "/graphql"
REGISTER = """mutation($input: CreateWebhookEndpointInput!) {
  createWebhookEndpoint(input: $input) { secret endpoint { id url kinds } } }"""
DISABLE = """mutation($id: ID!) { disableWebhookEndpoint(id: $id, reason: "the receiver stopped") { status } }"""
FETCH = """query($id: ID!) { node(id: $id) {
  ... on Observation { code { display } valueQuantity { value unit } patient { name { text } } }
  ... on Appointment { status start patient { name { text } } } } }"""


def receiver(secret: str, inbox: queue.Queue[dict[str, Any]]) -> type[BaseHTTPRequestHandler]:
    """An HTTP handler that accepts only correctly signed, fresh messages, each message id once."""
    verifier = Webhook(secret)
    seen: set[str] = set()
    lock = threading.Lock()

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            try:
                message = verifier.verify(body, dict(self.headers.items()))
            except WebhookVerificationError:
                self.send_response(401)
                self.end_headers()
                return
            self.send_response(204)
            self.end_headers()
            with lock:
                first = self.headers["webhook-id"] not in seen
                seen.add(self.headers["webhook-id"])
            if first:
                inbox.put(message)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return Hook


def main(argv: list[str]) -> int:
    token = os.environ.get("AKSON_TOKEN")
    if not token or len(argv) > 2:
        print(__doc__, file=sys.stderr)
        return 2
    port = int(argv[1]) if len(argv) == 2 else 9000
    seconds = float(os.environ.get("AKSON_RECEIVE_SECONDS", "inf"))
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30) as api:
        endpoint = {"url": f"http://127.0.0.1:{port}/hook", "kinds": ["OBSERVATION", "APPOINTMENT"]}
        body = api.post(URL, json={"query": REGISTER, "variables": {"input": endpoint}}).json()
        if body.get("errors"):
            print(f"not registered: {body['errors'][0]['message']}", file=sys.stderr)
            return 1
        registered = body["data"]["createWebhookEndpoint"]
        print(f"endpoint {registered['endpoint']['id']} at {registered['endpoint']['url']}", flush=True)
        inbox: queue.Queue[dict[str, Any]] = queue.Queue()
        server = ThreadingHTTPServer(("127.0.0.1", port), receiver(registered["secret"], inbox))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            while True:
                try:
                    message = inbox.get(timeout=seconds if seconds != float("inf") else None)
                except queue.Empty:
                    return 0
                change = message["data"]
                node = api.post(URL, json={"query": FETCH, "variables": {"id": change["id"]}}).json()
                if node.get("errors"):
                    print(f"{change['kind']} {change['action']}: not readable now ({node['errors'][0]['message']})")
                    continue
                resource = node["data"]["node"]
                what = resource.get("code", {}).get("display") or resource.get("status")
                print(
                    f"{change['kind']} {change['action']} v{change['version']}: {what} for "
                    f"{resource['patient']['name']['text']}",
                    flush=True,
                )
        except KeyboardInterrupt:
            return 0
        finally:
            server.shutdown()
            api.post(URL, json={"query": DISABLE, "variables": {"id": registered["endpoint"]["id"]}})


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
