"""`akson org merge` and `akson org move-unit`: reorganizations with an access-impact report.

Each command carries the change out in one transaction (gateway/reorganize.py) with the report of whose
patients' data becomes visible or invisible to whom (gateway/access_impact.py); `--dry-run` prints the
report and rolls the change back, so the report of a dry run is the report of the change it previews.
The command acts as the operator on the server, recorded in the audit log as the service `akson-org` (a dry run
too: one `preview_merge` or `preview_move` record, for the report names patients).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import asyncpg
import orjson
from cerbos.sdk.grpc.client import AsyncCerbosClient

from gateway.access_impact import ImpactReport, assess, units_of_municipalities
from gateway.audit import AuditRecord, AuditTrail, insert_rows
from gateway.auth import Principal
from gateway.authz import Authorizer, policy_fingerprint, policy_scopes
from gateway.components import start_components
from gateway.config import Settings
from gateway.errors import AksonError, BadUserInput
from gateway.reorganize import REASON, Reorganization, Reorganizer, check_merge, find_municipality, find_unit

OPERATOR = Principal(kind="service", id="akson-org", client_id="akson-cli", roles=frozenset({"service"}))


async def _run(settings: Settings, url: str, target: str, args: argparse.Namespace) -> ImpactReport:
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    assert pool is not None
    try:
        async with AsyncCerbosClient(target) as client:
            version = policy_fingerprint(settings.policy_dir)
            authorizer = Authorizer(client, version, policy_scopes(settings.policy_dir))
            async with pool.acquire() as conn:
                if args.org_command == "merge":
                    source = await find_municipality(conn, args.source)
                    into = await find_municipality(conn, args.into)
                    scope = _chosen_scope(args, into.policy_scope)
                    check_merge(source, into, scope)
                    ids, kind = [source.id, into.id], "municipality"
                else:
                    unit = await find_unit(conn, args.unit)
                    into = await find_municipality(conn, args.to)
                    ids = [i for i in (unit["municipality_id"], into.id) if i]
                    kind = "organization"

            async def units_of(conn: asyncpg.Connection) -> list[str]:
                return await units_of_municipalities(conn, ids)

            async def change(conn: asyncpg.Connection) -> Reorganization:
                reorganizer = Reorganizer(conn, OPERATOR, version)
                if args.org_command == "merge":
                    return await reorganizer.merge(source, into, scope, combine_units=args.combine_units)
                return await reorganizer.move_unit(unit, into)

            apply = not args.dry_run
            report = await assess(pool, settings, authorizer, units_of, change, apply=apply, samples=args.samples)
            if not apply:
                preview = AuditRecord(None, kind, tuple(ids), f"preview_{args.org_command}", True, REASON)
                await insert_rows(pool, AuditTrail(OPERATOR, version).rows([preview]))
            return report
    finally:
        await pool.close()


def _chosen_scope(args: argparse.Namespace, target_scope: str | None) -> str | None:
    """The merged municipality's policy scope as chosen; a dry run without a choice previews the target's own."""
    if args.national_baseline:
        return None
    if args.policy_scope:
        return str(args.policy_scope)
    if not args.dry_run:
        raise BadUserInput(
            "choose the merged municipality's policy scope: --policy-scope NAME (either municipality's own) or "
            "--national-baseline",
            argument="policyScope",
        )
    return target_scope


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Carry a reorganization out (or preview it) and print its access-impact report."""
    components = start_components(settings, pdp_dir="cerbos-org")
    try:
        report = asyncio.run(
            _run(settings, components.database_url, components.cerbos_target.removeprefix("grpc://"), args)
        )
    except AksonError as exc:
        print(f"refused: {exc}")
        return 2
    finally:
        components.stop()
    if args.json:
        print(orjson.dumps(report.as_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        print_report(report)
        if args.org_command == "merge" and not (args.policy_scope or args.national_baseline):
            print("  (no policy scope chosen: previewed with the target's own; to apply, choose --policy-scope NAME")
            print("   or --national-baseline)")
    return 0


def _counts(found: dict[str, Any]) -> str:
    return ", ".join(f"{category} {entry['patients']}" for category, entry in found.items()) or "-"


def _samples(found: dict[str, Any]) -> str:
    ids = sorted({i for entry in found.values() for i in entry["samples"]})
    return ", ".join(ids[:3])


def print_report(report: ImpactReport) -> None:
    """The report as a policy admin reads it: what was done, then per role and unit what changed."""
    done = report.as_json()
    change = done["reorganization"]
    print(f"{change['title']}: {'APPLIED' if report.applied else 'DRY RUN, nothing changed'}")
    for unit in change["units"]:
        where = f" into {unit['into_name']}" if unit["change"] == "combined" else ""
        print(f"  unit {unit['name']} ({unit['unit_type']}): {unit['change']}{where}")
    print(
        f"  patients moved {change['patients_moved']}, care relations moved {change['care_relations_moved']}, "
        f"roles moved {change['roles_moved']}, blocks carried over {change['restrictions_carried_over']}, "
        f"audit records {change['audit_records']}"
    )
    if change["title"].startswith("merge"):
        print(
            f"  policy scope of the merged municipality: {change['policy_scope_before'] or 'national'} -> "
            f"{change['policy_scope_after'] or 'national'}"
        )
    print("access impact (patients whose data of a category becomes visible + or invisible -, per role and unit):")
    unchanged = 0
    for group in done["groups"]:
        if not group["visible"] and not group["invisible"]:
            unchanged += 1
            continue
        print(f"  {group['role']} @ {group['unit']} ({group['people']} people)")
        if group["visible"]:
            print(f"    + {_counts(group['visible'])}   e.g. {_samples(group['visible'])}")
        if group["invisible"]:
            print(f"    - {_counts(group['invisible'])}   e.g. {_samples(group['invisible'])}")
    print(f"  {unchanged} role/unit group(s) unchanged")


def add_commands(sub: Any) -> None:
    """`akson org merge` and `akson org move-unit`."""
    org = sub.add_parser("org", help="reorganize: merge municipalities, move units, with an access-impact report")
    actions = org.add_subparsers(dest="org_command", required=True)
    merge = actions.add_parser("merge", help="merge one municipality into another")
    merge.add_argument("--from", dest="source", required=True, help="the municipality merged away (name or number)")
    merge.add_argument("--into", required=True, help="the municipality it becomes part of")
    scope = merge.add_mutually_exclusive_group()
    scope.add_argument(
        "--policy-scope",
        help="the merged municipality's policy scope (either one's own); required to apply, a dry run without it "
        "previews the target's own",
    )
    scope.add_argument("--national-baseline", action="store_true", help="the merged municipality has no local rules")
    merge.add_argument(
        "--combine-units",
        action="store_true",
        help="combine a unit into the other municipality's only unit of the same service",
    )
    move = actions.add_parser("move-unit", help="move a unit (and the units under it) to another municipality")
    move.add_argument("unit", help="the unit's id or name")
    move.add_argument("--to", required=True, help="the municipality it moves to")
    for command in (merge, move):
        command.add_argument("--dry-run", action="store_true", help="print the report and change nothing")
        command.add_argument("--json", action="store_true", help="print the report as JSON")
        command.add_argument("--samples", type=int, default=3, help="sample patient ids per category (default 3)")
        command.set_defaults(handler=run)
