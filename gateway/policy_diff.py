"""`akson policy diff --against GIT_REF_OR_DIR`: every decision a policy change would change, before rollout.

The authorization matrix (every demo persona x every kind x every action either policy set names x a sample
of the journal's rows) is decided twice, by two PDPs, one per policy set, through the gateway's own
`Authorizer` (the principal, attributes and municipal scope exactly as the gateway sends them). Every
decision that differs is reported, grouped by kind, action and the decision and reason before and after,
with the rule that made each (the PDP's metadata), the personas it concerns and sample resources. The exit
code is 1 when a change is not in the allowed list, so a municipality can run it in its own CI.
"""

from __future__ import annotations

import argparse
import asyncio
import fnmatch
import io
import subprocess
import tarfile
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import yaml
from cerbos.sdk.grpc.client import AsyncCerbosClient

from gateway import demo_issuer
from gateway.auth import Principal, principal_of_claims
from gateway.authz import Authorizer, Decision, Explanation, policy_fingerprint, policy_scopes
from gateway.components import CerbosProcess, start_database
from gateway.config import Settings
from gateway.declare import ResourceKind
from gateway.personas import PERSONAS, Persona
from gateway.resources import KINDS
from gateway.sql import ident, sql, value
from gateway.store import Row, attributes_of, fetch, rows_by_id


@dataclass
class Change:
    """Decisions that changed the same way: kind, action, before and after (`ALLOW:REASON`)."""

    kind: str
    action: str
    before: str
    after: str
    personas: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    samples: list[tuple[str, str]] = field(default_factory=list)
    rule_before: str = ""
    rule_after: str = ""

    @property
    def label(self) -> str:
        return f"{self.kind} {self.action} {self.before}->{self.after}"

    @property
    def count(self) -> int:
        return sum(self.personas.values())


def policy_set(project: Path, against: str, work: Path) -> Path:
    """The policy folder to compare with: a folder as it is, or the `policies/` of a git revision."""
    folder = Path(against)
    if folder.is_dir():
        return folder.resolve()
    archive = subprocess.run(
        ["git", "-C", str(project), "archive", "--format=tar", against, "policies"],
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        raise SystemExit(f"--against {against!r} is neither a folder nor a git revision with policies/")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(work, filter="data")
    return work / "policies"


def actions_of(*folders: Path) -> dict[str, set[str]]:
    """The actions each resource kind's policies name, in either policy set (`*` stands for none)."""
    found: dict[str, set[str]] = defaultdict(set)
    for folder in folders:
        for path in sorted((folder / "resources").rglob("*.yaml")):
            document = yaml.safe_load(path.read_text()) or {}
            policy = document.get("resourcePolicy") or {}
            for rule in policy.get("rules") or []:
                found[policy.get("resource", "")].update(a for a in rule.get("actions") or [] if a != "*")
    return found


async def _sample(pool: asyncpg.Pool, kind: ResourceKind, rows: int) -> list[Row]:
    """A deterministic spread of a kind's rows (by a hash of the id), with their policy attributes."""
    ids = await fetch(
        pool,
        sql(
            "SELECT ",
            ident(kind.id_column),
            "::text AS id FROM ",
            ident(kind.table),
            " ORDER BY md5(",
            ident(kind.id_column),
            "::text) LIMIT ",
            value(rows, "integer"),
        ),
    )
    return await fetch(pool, rows_by_id(kind, [r["id"] for r in ids])) if ids else []


async def _decide(
    authorizer: Authorizer, principal: Principal, kind: ResourceKind, action: str, rows: list[Row]
) -> list[Decision]:
    return await authorizer.check(
        principal,
        kind,
        action,
        [(str(r["id"]), attributes_of(kind, r)) for r in rows],
        [r["_scope"] if kind.scope_sql else None for r in rows],
    )


async def persona_principal(settings: Settings, pool: asyncpg.Pool, persona: Persona) -> Principal:
    """The principal a demo persona's token makes, looked up as the gateway looks it up."""
    claims = demo_issuer.persona_claims(persona, issuer=settings.issuer, audience=settings.audience)
    return await principal_of_claims(pool, settings.claim_names, claims)


def _rule(found: Explanation) -> str:
    """The rule that gave the decision its reason (`policy#rule`), or the policy that decided."""
    named = [src for src, reason in found.outputs if reason == found.decision.reason]
    return named[0] if named else found.matched_policy


def _side(decision: Decision) -> str:
    return f"{'ALLOW' if decision.allowed else 'DENY'}:{decision.reason}"


@dataclass(frozen=True)
class Comparison:
    """How many decisions were compared, how many denials only named another reason (left out), and the
    changes: every decision whose effect changed, and every allow whose reason changed.

    A denial's reason is not compared: when several deny rules apply, Cerbos stops at the first that fires
    and does not always take them in the same order, so the same input can be denied with different reasons
    from one ask to the next (clinical notes in a municipal scope do)."""

    compared: int
    denials: int
    changes: list[Change]


async def compare(
    settings: Settings, url: str, targets: tuple[str, str], folders: tuple[Path, Path], rows: int
) -> Comparison:
    """The decisions of the matrix under both policy sets, and every change between them."""
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    assert pool is not None
    changes: dict[tuple[str, str, str, str], Change] = {}
    compared = denials = 0
    try:
        principals = {name: await persona_principal(settings, pool, persona) for name, persona in PERSONAS.items()}
        actions = actions_of(*folders)
        samples = {kind.name: await _sample(pool, kind, rows) for kind in KINDS.values() if kind.id_type == "uuid"}
        async with AsyncCerbosClient(targets[0]) as old_client, AsyncCerbosClient(targets[1]) as new_client:
            old = Authorizer(old_client, policy_fingerprint(folders[0]), policy_scopes(folders[0]))
            new = Authorizer(new_client, policy_fingerprint(folders[1]), policy_scopes(folders[1]))
            for kind in KINDS.values():
                found = samples.get(kind.name) or []
                for action in sorted(actions.get(kind.name, ())):
                    for name, principal in principals.items():
                        before = await _decide(old, principal, kind, action, found)
                        after = await _decide(new, principal, kind, action, found)
                        compared += len(found)
                        for row, was, now in zip(found, before, after, strict=True):
                            if was == now:
                                continue
                            scope = row["_scope"] if kind.scope_sql else None
                            attributes = attributes_of(kind, row)
                            rid = str(row["id"])
                            if not was.allowed and not now.allowed:
                                denials += 1
                                continue
                            key = (kind.name, action, _side(was), _side(now))
                            change = changes.get(key)
                            if change is None:
                                change = changes[key] = Change(*key)
                                change.rule_before = _rule(
                                    await old.explain(principal, kind, action, rid, attributes, scope)
                                )
                                change.rule_after = _rule(
                                    await new.explain(principal, kind, action, rid, attributes, scope)
                                )
                            change.personas[name] += 1
                            if len(change.samples) < 3:
                                change.samples.append((name, str(row["id"])))
    finally:
        await pool.close()
    ordered = sorted(changes.values(), key=lambda c: (c.kind, c.action, c.before, c.after))
    return Comparison(compared, denials, ordered)


def allowed_patterns(path: str | None) -> list[str]:
    """The changes a rollout expects: one `kind action BEFORE->AFTER` pattern a line (`*` wildcards, # notes)."""
    if path is None:
        return []
    lines = Path(path).read_text().splitlines()
    return [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]


def not_allowed(changes: list[Change], patterns: list[str]) -> list[Change]:
    """The changes no pattern of the allowed list matches (`kind action BEFORE->AFTER`, `*` wildcards)."""
    return [c for c in changes if not any(fnmatch.fnmatchcase(c.label, p) for p in patterns)]


def diff(settings: Settings, args: argparse.Namespace) -> int:
    """`akson policy diff`: print every changed decision; exit 1 when one is not allowed."""
    patterns = allowed_patterns(args.allow)
    url, stop_db = start_database(settings)
    with tempfile.TemporaryDirectory(prefix="akson-policy-diff-") as work:
        folders = (policy_set(settings.project_dir, args.against, Path(work) / "against"), settings.policy_dir)
        pdps = [
            CerbosProcess(settings.cerbos_binary, folder, Path(work) / f"pdp-{i}") for i, folder in enumerate(folders)
        ]
        try:
            for pdp in pdps:
                pdp.start()
            found = asyncio.run(compare(settings, url, (pdps[0].grpc_target, pdps[1].grpc_target), folders, args.rows))
        finally:
            for pdp in pdps:
                pdp.stop()
            if stop_db:
                stop_db()
    unexpected = not_allowed(found.changes, patterns)
    if args.json:
        print(orjson.dumps(_as_json(found, unexpected), option=orjson.OPT_INDENT_2).decode())
    else:
        _print(args.against, found, unexpected)
    return 1 if unexpected else 0


def _as_json(found: Comparison, unexpected: list[Change]) -> dict[str, Any]:
    return {
        "compared": found.compared,
        "denials_with_another_reason": found.denials,
        "changes": [
            {
                "kind": c.kind,
                "action": c.action,
                "before": c.before,
                "after": c.after,
                "rule_before": c.rule_before,
                "rule_after": c.rule_after,
                "count": c.count,
                "personas": dict(c.personas),
                "samples": [{"persona": p, "id": i} for p, i in c.samples],
                "allowed": c not in unexpected,
            }
            for c in found.changes
        ],
    }


def _print(against: str, found: Comparison, unexpected: list[Change]) -> None:
    changed = sum(c.count for c in found.changes)
    print(f"policy diff against {against}: {found.compared:,} decisions compared, {changed:,} changed")
    if found.denials:
        print(f"  ({found.denials} denials named another reason: a denial's reason is not compared)")
    for c in found.changes:
        mark = "  " if c not in unexpected else "! "
        print(f"{mark}{c.label}  ({c.count} decisions)")
        print(f"    rule before: {c.rule_before or '(none: default deny)'}")
        print(f"    rule after:  {c.rule_after or '(none: default deny)'}")
        print(f"    personas:    {', '.join(f'{p} ({n})' for p, n in sorted(c.personas.items()))}")
        print(f"    e.g.         {', '.join(f'{p} on {c.kind}:{i}' for p, i in c.samples)}")
    if unexpected:
        print(f"{len(unexpected)} change(s) not in the allowed list (marked !)")


def add_command(actions: Any) -> None:
    """`akson policy diff`."""
    compare_cmd = actions.add_parser("diff", help="every decision a policy change would change, before rollout")
    compare_cmd.add_argument("--against", required=True, help="a git revision (e.g. main, HEAD~1) or a policy folder")
    compare_cmd.add_argument("--allow", help="a file of expected changes: `kind action BEFORE->AFTER` patterns")
    compare_cmd.add_argument("--rows", type=int, default=200, help="rows of each kind to decide on (default 200)")
    compare_cmd.add_argument("--json", action="store_true", help="print the report as JSON")
    compare_cmd.set_defaults(handler=diff)
