"""A vendor's backend service (no user): registers itself, then authenticates with client credentials
(private_key_jwt, as HelseID requires of machine clients) and calls the API with a system token.

  # 1. register (the vendor's existing management client signs the request)
  AKSON_TOKEN=$(.venv/bin/akson token --persona vendor-app | tail -1) \\
      python examples/backend_service.py register --key planner-key.json
  # 2. a policy admin approves it, e.g. in GraphiQL with a `policy-admin` token:
  #    mutation { approveApp(clientId: "<printed id>", reason: "DPIA done") { status } }
  # 3. run: fetch a token with the private key and read the unit directory
  python examples/backend_service.py run --key planner-key.json --client-id <printed id>
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path

import httpx
import orjson
from joserfc import jwt
from joserfc.jwk import ECKey

BASE = os.environ.get("AKSON_URL", "http://127.0.0.1:8000")
SCOPES = ["system/Organization.rs", "system/Practitioner.rs", "system/PractitionerRole.rs"]
REGISTER = """mutation($input: RegisterAppInput!) { registerApp(input: $input) { clientId status } }"""
UNITS = """{ organizations(first: 50) { totalCount edges { node { name unitType orgNumber } } } }"""


def load_or_create_key(path: Path) -> ECKey:
    """The service's private key: made once, kept by the vendor, never sent anywhere."""
    if path.exists():
        return ECKey.import_key(orjson.loads(path.read_bytes()))
    key = ECKey.generate_key("P-256", parameters={"kid": uuid.uuid4().hex[:12], "alg": "ES256"}, private=True)
    path.write_bytes(orjson.dumps(key.as_dict(private=True)))
    path.chmod(0o600)
    return key


def register(key: ECKey, token: str) -> int:
    client_id = f"visit-planner-{uuid.uuid4().hex[:6]}"
    app = {
        "clientId": client_id,
        "name": "Visit planner",
        "vendorOrgNumber": "912345678",
        "kind": "BACKEND_SERVICE",
        "scopes": SCOPES,
        "jwks": {"keys": [key.as_dict(private=False)]},
    }
    body = httpx.post(
        f"{BASE}/graphql",
        json={"query": REGISTER, "variables": {"input": app}},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    ).json()
    if body.get("errors"):
        print(body["errors"][0]["message"], file=sys.stderr)
        return 1
    print(f"registered {client_id}: {body['data']['registerApp']['status'].lower()}, awaiting approval")
    print(client_id)
    return 0


def system_token(key: ECKey, client_id: str) -> str:
    """Client credentials with a signed client assertion (RFC 7523)."""
    endpoint = f"{BASE}/oauth/token"
    now = int(time.time())
    assertion = jwt.encode(
        {"alg": "ES256", "kid": key.kid},
        {"iss": client_id, "sub": client_id, "aud": endpoint, "iat": now, "exp": now + 60, "jti": uuid.uuid4().hex},
        key,
    )
    response = httpx.post(
        endpoint,
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
        timeout=30,
    )
    if response.status_code != 200:
        raise SystemExit(f"token refused: {response.json().get('error_description')}")
    return str(response.json()["access_token"])


def run(key: ECKey, client_id: str) -> int:
    token = system_token(key, client_id)
    body = httpx.post(
        f"{BASE}/graphql", json={"query": UNITS}, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ).json()
    if body.get("errors"):
        print(body["errors"][0]["message"], file=sys.stderr)
        return 1
    units = body["data"]["organizations"]
    for edge in units["edges"]:
        node = edge["node"]
        print(f"{node['orgNumber']}  {node['unitType'].lower():<15} {node['name']}")
    print(f"{units['totalCount']} units", file=sys.stderr)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description="A backend service calling Akson Gateway.")
    parser.add_argument("step", choices=["register", "run"])
    parser.add_argument("--key", type=Path, default=Path("planner-key.json"))
    parser.add_argument("--client-id")
    args = parser.parse_args()
    key = load_or_create_key(args.key)
    if args.step == "register":
        token = os.environ.get("AKSON_TOKEN")
        if not token:
            parser.error("set AKSON_TOKEN to a token of the vendor's management client")
        return register(key, token)
    if not args.client_id:
        parser.error("run needs --client-id")
    return run(key, args.client_id)


if __name__ == "__main__":
    raise SystemExit(main())
