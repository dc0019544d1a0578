"""Trusted documents: the operations an app registered, sent afterwards by id instead of as text.

A document's id is the SHA-256 of its exact text, as the GraphQL-over-HTTP persisted-documents proposal
(`documentId: "sha256:<hex>"`) and Apollo's persisted queries (`extensions.persistedQuery.sha256Hash`,
bare hex) both compute it. An app registers documents through `registerTrustedDocuments` (or `akson app
documents`); a request then names one, and the gateway runs the registered text. Where trusted documents
are required, a third-party app's query text is refused: only what was registered, and so could be
reviewed, runs.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import asyncpg
from graphql import GraphQLError, OperationDefinitionNode, parse

from gateway.errors import BadRequest, BadUserInput, PersistedQueryNotFound, TrustedDocumentNotFound

HEX_SHA256 = re.compile(r"[0-9a-f]{64}")
MAX_DOCUMENT_CHARS = 100_000
_CACHED = 4096


def sha256_of(text: str) -> str:
    """The hex SHA-256 of a text's UTF-8: a document's id, and how a secret (a session cookie, an authorization
    code) is kept at rest."""
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class DocumentRef:
    """Which document a request names, and how (for the error code it gets if unknown)."""

    sha256: str
    apollo: bool


def requested_document(params: dict[str, Any]) -> DocumentRef | None:
    """The document a request names by `documentId` or Apollo's persisted-query extension, if any."""
    document_id = params.get("documentId")
    if document_id is not None:
        if not isinstance(document_id, str):
            raise BadRequest("`documentId` must be a string such as sha256:<64 hex digits>")
        digest = document_id.removeprefix("sha256:")
        if not HEX_SHA256.fullmatch(digest):
            raise BadRequest("`documentId` must be sha256:<64 lower-case hex digits>")
        return DocumentRef(digest, apollo=False)
    extensions = params.get("extensions")
    persisted = extensions.get("persistedQuery") if isinstance(extensions, dict) else None
    if persisted is None:
        return None
    hashed = persisted.get("sha256Hash") if isinstance(persisted, dict) else None
    if not isinstance(hashed, str) or not HEX_SHA256.fullmatch(hashed):
        raise BadRequest("`extensions.persistedQuery.sha256Hash` must be 64 lower-case hex digits")
    return DocumentRef(hashed, apollo=True)


def checked_document(text: object) -> tuple[str, tuple[str, ...]]:
    """A document fit to register: GraphQL that parses, with at least one operation; returns its id and
    operation names."""
    if not isinstance(text, str) or not text.strip():
        raise BadUserInput("a trusted document must be a non-empty GraphQL document", argument="documents")
    if len(text) > MAX_DOCUMENT_CHARS:
        raise BadUserInput(f"a trusted document may hold at most {MAX_DOCUMENT_CHARS} characters", argument="documents")
    try:
        parsed = parse(text)
    except GraphQLError as exc:
        raise BadUserInput(f"a trusted document does not parse: {exc.message}", argument="documents") from exc
    operations = [d for d in parsed.definitions if isinstance(d, OperationDefinitionNode)]
    if not operations:
        raise BadUserInput("a trusted document must hold an operation", argument="documents")
    return sha256_of(text), tuple(o.name.value for o in operations if o.name)


class TrustedDocuments:
    """Looks up an app's registered documents; they never change once registered, so found ones are kept."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._known: OrderedDict[tuple[str, str], str] = OrderedDict()

    async def text(self, client_id: str, ref: DocumentRef) -> str:
        """The registered text of the document `ref` names for this app; refused if there is none."""
        key = (client_id, ref.sha256)
        text = self._known.get(key)
        if text is None:
            text = await self._pool.fetchval(
                "SELECT document FROM trusted_document WHERE client_id = $1 AND sha256 = $2", client_id, ref.sha256
            )
            if text is None:
                error = PersistedQueryNotFound if ref.apollo else TrustedDocumentNotFound
                raise error(f"the app {client_id!r} has registered no document with this id", documentId=ref.sha256)
            self._known[key] = text
            if len(self._known) > _CACHED:
                self._known.popitem(last=False)
        else:
            self._known.move_to_end(key)
        return text
