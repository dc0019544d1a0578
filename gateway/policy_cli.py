"""Tools for policy admins: run the policy test suites, and explain one decision.

`akson policy explain` builds the principal exactly as the gateway does for a persona's token, loads
the resource's policy attributes with the gateway's own SQL, and asks the PDP for the decision with
its metadata: the effect, the matched policy and scope, the derived roles, every output, the reason the
gateway would report, and the policy version.
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
from cerbos.engine.v1 import engine_pb2
from cerbos.request.v1 import request_pb2
from cerbos.sdk.grpc.client import AsyncCerbosClient
from google.protobuf.json_format import MessageToDict

from gateway import demo_issuer
from gateway.auth import Authenticator
from gateway.authz import POLICY_VERSION, _struct, cerbos_principal, choose_reason, policy_fingerprint, policy_scopes
from gateway.components import CerbosProcess, start_database
from gateway.config import Settings
from gateway.declare import ResourceKind
from gateway.personas import PERSONAS
from gateway.resources import KINDS
from gateway.store import attributes_of, fetch, rows_by_id


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
        claims = demo_issuer.persona_claims(persona, issuer=settings.issuer, audience=settings.audience)
        principal = await Authenticator(None, pool, settings.claim_names, None).principal_for(claims)  # type: ignore[arg-type]
        rows = await fetch(pool, rows_by_id(kind, [rid]))
    finally:
        await pool.close()
    if not rows:
        raise SystemExit(f"no {kind.type_name} {rid} in the journal")
    [row] = rows
    attributes = attributes_of(kind, row)
    scope = row["_scope"] if kind.scope_sql and row["_scope"] in policy_scopes(settings.policy_dir) else ""
    request = request_pb2.CheckResourcesRequest(
        request_id=str(uuid.uuid4()),
        include_meta=True,
        principal=cerbos_principal(principal),
        resources=[
            request_pb2.CheckResourcesRequest.ResourceEntry(
                actions=[args.action],
                resource=engine_pb2.Resource(
                    kind=kind.name, id=rid, attr=_struct(attributes).fields, policy_version=POLICY_VERSION, scope=scope
                ),
            )
        ],
    )
    async with AsyncCerbosClient(cerbos_target) as client:
        response = await client._client.CheckResources(request)
    [result] = response.results
    effect = engine_pb2.Effect.Name(result.actions[args.action]) if hasattr(engine_pb2, "Effect") else None
    meta = MessageToDict(result.meta).get("actions", {}).get(args.action, {})
    outputs = list({(o.src, MessageToDict(o.val).__repr__()): MessageToDict(o) for o in result.outputs}.values())
    allowed = result.actions[args.action] == 1
    reasons = [o["val"] for o in outputs if isinstance(o.get("val"), str)]
    return {
        "principal": {
            "persona": persona.name,
            "kind": principal.kind,
            "id": principal.id,
            "roles": sorted(principal.roles),
            "units": list(principal.unit_ids),
        },
        "resource": {"kind": kind.name, "id": rid, "attributes": attributes},
        "action": args.action,
        "decision": "ALLOW" if allowed else "DENY",
        "effect": effect,
        "matched_policy": meta.get("matchedPolicy", ""),
        "matched_scope": meta.get("matchedScope", ""),
        "derived_roles": MessageToDict(result.meta).get("effectiveDerivedRoles", []),
        "outputs": outputs,
        "reason": choose_reason(allowed, reasons),
        "policy_version": policy_fingerprint(settings.policy_dir),
    }


def explain(settings: Settings, args: argparse.Namespace) -> int:
    """Print why a persona may or may not take an action on a resource."""
    url, stop_db = start_database(settings)
    pdp = None
    try:
        target = settings.cerbos_url
        if not target:
            pdp = CerbosProcess(settings.cerbos_binary, settings.policy_dir, settings.data_dir / "cerbos-explain")
            pdp.start()
            target = pdp.grpc_target
        report = asyncio.run(_explain(settings, url, target.removeprefix("grpc://"), args))
    finally:
        if pdp:
            pdp.stop()
        if stop_db:
            stop_db()
    print(
        f"decision:       {report['decision']}  ({report['action']} {report['resource']['kind']} "
        f"{report['resource']['id']} as {report['principal']['persona']})"
    )
    print(f"reason:         {report['reason']}")
    print(
        f"matched rule:   {report['matched_policy'] or '(none: default deny)'}"
        + (f" in scope {report['matched_scope']}" if report["matched_scope"] else "")
    )
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
    """`akson policy test` and `akson policy explain`."""
    policy = sub.add_parser("policy", help="policy admin tools: test the policies, explain a decision")
    actions = policy.add_subparsers(dest="policy_command", required=True)
    actions.add_parser("test", help="run the Cerbos policy test suites").set_defaults(
        handler=lambda settings, args: run_policy_tests(settings)
    )
    why = actions.add_parser("explain", help="explain one decision")
    why.add_argument("--persona", required=True, help="see `akson personas`")
    why.add_argument("--resource", required=True, help="KIND:ID, e.g. Patient:<global id> or encounter:<uuid>")
    why.add_argument("--action", default="read", help="read, search, read_text, ... (default read)")
    why.set_defaults(handler=explain)
