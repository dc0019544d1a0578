"""`akson app documents`: register an app's trusted documents through the gateway's own API.

The command is a client like any other: it calls `registerTrustedDocuments` with the token it is given
(the app's registrant's, or a policy admin's), so the registration is decided by policy and audited.
It reads `.graphql` files (each file one document) and persisted-document manifests in the two formats
build tools write: a JSON object of id to text (GraphQL Code Generator's client preset), and Apollo's
`apollo-persisted-query-manifest`. A manifest's ids must be the SHA-256 of their text, as the gateway's are.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson

from gateway.config import Settings
from gateway.trusted_documents import sha256_of

REGISTER = """mutation Register($clientId: String!, $documents: [String!]!) {
  registerTrustedDocuments(clientId: $clientId, documents: $documents) { documentId operationNames }
}"""


class ManifestError(ValueError):
    """A manifest that cannot be registered as it is."""


def documents_in(path: Path) -> list[str]:
    """The documents a file holds: a .graphql file is one; a .json manifest lists them, each checked
    against its id."""
    text = path.read_text(encoding="utf-8")
    if path.suffix != ".json":
        return [text]
    manifest: Any = orjson.loads(text)
    if isinstance(manifest, dict) and manifest.get("format") == "apollo-persisted-query-manifest":
        pairs = [(op.get("id"), op.get("body")) for op in manifest.get("operations", [])]
    elif isinstance(manifest, dict):
        pairs = list(manifest.items())
    else:
        raise ManifestError(f"{path}: a manifest is a JSON object")
    documents = []
    for given_id, body in pairs:
        if not isinstance(body, str) or not isinstance(given_id, str):
            raise ManifestError(f"{path}: every entry needs an id and a document text")
        if given_id.removeprefix("sha256:") != sha256_of(body):
            raise ManifestError(f"{path}: {given_id} is not the SHA-256 of its document; the gateway would not find it")
        documents.append(body)
    return documents


def _cmd_documents(settings: Settings, args: argparse.Namespace) -> int:
    token = args.token or os.environ.get("AKSON_TOKEN")
    if not token:
        print("give a token with --token or AKSON_TOKEN (the registrant's or a policy admin's)", file=sys.stderr)
        return 2
    try:
        documents = [d for path in args.files for d in documents_in(Path(path))]
    except (OSError, ValueError) as exc:
        print(f"cannot read the documents: {exc}", file=sys.stderr)
        return 2
    response = httpx.post(
        f"{args.gateway.rstrip('/')}/graphql",
        json={"query": REGISTER, "variables": {"clientId": args.client_id, "documents": documents}},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    answer = response.json()
    if response.status_code != 200 or answer.get("errors"):
        for error in answer.get("errors", []):
            print(f"refused: {error['message']} ({error.get('extensions', {}).get('code')})", file=sys.stderr)
        return 1
    for document in answer["data"]["registerTrustedDocuments"]:
        print(document["documentId"], " ".join(document["operationNames"]))
    return 0


def add_commands(sub: Any, settings_base_url: str) -> None:
    """`akson app documents CLIENT_ID FILE...`."""
    app = sub.add_parser("app", help="manage an app registered with the gateway")
    app_sub = app.add_subparsers(dest="app_command", required=True)
    documents = app_sub.add_parser(
        "documents", help="register trusted documents (.graphql files or persisted-document manifests)"
    )
    documents.add_argument("client_id")
    documents.add_argument("files", nargs="+")
    documents.add_argument(
        "--gateway", default=settings_base_url, help=f"the gateway's URL (default {settings_base_url})"
    )
    documents.add_argument("--token", help="a bearer token (default: $AKSON_TOKEN)")
    documents.set_defaults(handler=_cmd_documents)
