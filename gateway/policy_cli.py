"""Tools for policy admins: run the policy test suites, and explain one decision.

`akson policy explain` builds the principal exactly as the gateway does for a persona's token, loads
the resource's policy attributes and municipal scope with the gateway's own SQL, and asks the gateway's
own authorizer (`Authorizer.explain`, the request `check` sends, with the PDP's metadata) for the decision:
the matched policy and scope, the derived roles, every output, the reason the gateway would report, and
the policy version.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import subprocess
import uuid
from typing import Any

import asyncpg
from cerbos.sdk.grpc.client import AsyncCerbosClient

from gateway.authz import Authorizer, policy_fingerprint, policy_scopes
from gateway.components import start_components
from gateway.config import Settings
from gateway.declare import ResourceKind
from gateway.errors import NotFound
from gateway.explain import explain as explain_decision
from gateway.personas import PERSONAS
from gateway.policy_diff import add_command as add_diff_command
from gateway.policy_diff import persona_principal
from gateway.resources import KINDS


def run_policy_tests(settings: Settings) -> int:
    """`cerbos compile` over the policies: compile errors and every `*_test.yaml` suite."""
    done = subprocess.run([str(settings.cerbos_binary), "compile", str(settings.policy_dir)], check=False)
    return done.returncode


def _resource(spec: str) -> tuple[ResourceKind, str]:
    kind_name, _, raw = spec.partition(":")
    kind = KINDS.get(kind_name) or next((k for k in KINDS.values() if k.name == kind_name), None)
    if kind is None or not raw:
        raise SystemExit(f"--resource must be KIND:ID with KIND one of {', '.join(KINDS)}")
    try:
        uuid.UUID(raw)
        return kind, raw
    except ValueError:
        pass
    try:
        type_name, _, node_id = base64.b64decode(raw).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise SystemExit(f"{raw!r} is neither a journal id nor a global id") from exc
    if type_name != kind.type_name:
        raise SystemExit(f"{raw!r} is a {type_name} id, not a {kind.type_name} id")
    return kind, node_id


async def _explain(settings: Settings, url: str, cerbos_target: str, args: argparse.Namespace) -> dict[str, Any]:
    persona = PERSONAS.get(args.persona)
    if persona is None:
        raise SystemExit(f"unknown persona {args.persona!r}; known: {', '.join(PERSONAS)}")
    kind, rid = _resource(args.resource)
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    assert pool is not None
    try:
        principal = await persona_principal(settings, pool, persona)
        async with AsyncCerbosClient(cerbos_target) as client:
            authorizer = Authorizer(client, policy_fingerprint(settings.policy_dir), policy_scopes(settings.policy_dir))
            try:
                found = await explain_decision(pool, authorizer, principal, kind, rid, args.action)
            except NotFound as exc:
                raise SystemExit(str(exc)) from exc
    finally:
        await pool.close()
    return {
        "principal": {
            "persona": persona.name,
            "kind": principal.kind,
            "id": principal.id,
            "roles": sorted(principal.roles),
            "units": list(principal.unit_ids),
        },
        "resource": {"kind": kind.name, "id": rid, "attributes": found.attributes, "scope": found.scope},
        "action": args.action,
        "decision": "ALLOW" if found.allowed else "DENY",
        "matched_policy": found.matched_policy,
        "matched_scope": found.matched_scope,
        "derived_roles": found.derived_roles,
        "outputs": [{"src": src, "val": val} for src, val in found.outputs],
        "reason": found.reason,
        "policy_version": found.policy_version,
    }


def explain(settings: Settings, args: argparse.Namespace) -> int:
    """Print why a persona may or may not take an action on a resource."""
    components = start_components(settings, pdp_dir="cerbos-explain")
    try:
        report = asyncio.run(
            _explain(settings, components.database_url, components.cerbos_target.removeprefix("grpc://"), args)
        )
    finally:
        components.stop()
    print(
        f"decision:       {report['decision']}  ({report['action']} {report['resource']['kind']} "
        f"{report['resource']['id']} as {report['principal']['persona']})"
    )
    print(f"reason:         {report['reason']}")
    print(
        f"matched rule:   {report['matched_policy'] or '(none: default deny)'}"
        + (f" in scope {report['matched_scope']}" if report["matched_scope"] else "")
    )
    print(f"decided in:     {report['resource']['scope'] or 'the national scope'}")
    print(f"derived roles:  {', '.join(report['derived_roles']) or '-'}")
    for output in report["outputs"]:
        print(f"output:         {output.get('src')} -> {output.get('val')}")
    print(
        f"principal:      {report['principal']['kind']} {report['principal']['id']} "
        f"roles={','.join(report['principal']['roles'])}"
    )
    print(f"policy version: {report['policy_version']}")
    return 0


def add_commands(sub: Any) -> None:
    """`akson policy test`, `akson policy explain` and `akson policy diff`."""
    policy = sub.add_parser(
        "policy", help="policy admin tools: test the policies, explain a decision, diff two policy sets"
    )
    actions = policy.add_subparsers(dest="policy_command", required=True)
    actions.add_parser("test", help="run the Cerbos policy test suites").set_defaults(
        handler=lambda settings, args: run_policy_tests(settings)
    )
    why = actions.add_parser("explain", help="explain one decision")
    why.add_argument("--persona", required=True, help="see `akson personas`")
    why.add_argument("--resource", required=True, help="KIND:ID, e.g. Patient:<global id> or encounter:<uuid>")
    why.add_argument("--action", default="read", help="read, search, read_text, ... (default read)")
    why.set_defaults(handler=explain)
    add_diff_command(actions)
