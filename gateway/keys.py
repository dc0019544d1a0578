"""Signing keys kept in files: the demo issuer's and the audit log's. Each is an ES256 key created on
first use, atomically, so processes starting together agree on one key."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import orjson
from joserfc.jwk import ECKey


def load_or_create_key(path: Path) -> ECKey:
    """The private key kept at `path`; created once, atomically, so concurrent starts agree on it."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = ECKey.generate_key(
            "P-256", parameters={"kid": uuid.uuid4().hex[:16], "use": "sig", "alg": "ES256"}, private=True
        )
        # Written whole under a private name, then linked into place: a second process starting at the
        # same moment either wins the link or reads the winner's complete key, never a half-written file.
        draft = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(orjson.dumps(key.as_dict(private=True)))
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return ECKey.import_key(orjson.loads(path.read_bytes()))
