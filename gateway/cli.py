"""The `akson` command: serve, migrate, seed, token, personas, schema, audit."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import date
from typing import Any, TypeVar

import asyncpg

from gateway import demo_issuer
from gateway.audit_chain import Archived, AuditSeal, ChainReport, archive_before, verify_archives, verify_chain
from gateway.components import ComponentError, start_components, start_database
from gateway.config import DEMO_BASE_URL, Settings, load_settings
from gateway.db import MigrationError, ensure_database, migrate
from gateway.documents_cli import add_commands as add_document_commands
from gateway.keys import load_or_create_key
from gateway.org_cli import add_commands as add_org_commands
from gateway.personas import PERSONAS
from gateway.policy_cli import add_commands as add_policy_commands
from gateway.seed import is_seeded, reset, seed
from gateway.store import global_id_of

DEMO_PATIENTS = 1000
T = TypeVar("T")


async def _prepare(
    url: str, *, patients: int | None, observations: int | None, fresh: bool, only_if_empty: bool
) -> None:
    await ensure_database(url)
    conn = await asyncpg.connect(url)
    try:
        for name in await migrate(conn):
            print(f"applied migration {name}", flush=True)
        if patients is None:
            return
        if await is_seeded(conn):
            if only_if_empty:
                return
            if not fresh:
                raise SystemExit("the journal already holds data; pass --reset to replace it")
            await reset(conn)
        report = await seed(conn, patients=patients, observations=observations)
        counts = ", ".join(f"{n} {t}" for t, n in report.counts.items())
        print(f"seeded {counts} in {report.seconds:.1f}s", flush=True)
    finally:
        await conn.close()


def _cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    url, stop = start_database(settings)
    try:
        asyncio.run(_prepare(url, patients=None, observations=None, fresh=False, only_if_empty=False))
    finally:
        if stop:
            stop()
    return 0


def _cmd_seed(settings: Settings, args: argparse.Namespace) -> int:
    url, stop = start_database(settings)
    try:
        asyncio.run(
            _prepare(
                url,
                patients=args.patients,
                observations=args.observations,
                fresh=args.reset,
                only_if_empty=False,
            )
        )
    finally:
        if stop:
            stop()
    return 0


# How uvicorn serves the gateway in production; the benchmark's floor is served the same way.
SERVER: dict[str, Any] = {"log_level": "warning", "access_log": False, "loop": "uvloop", "http": "httptools"}


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    problems = [] if args.demo else settings.production_problems()
    if problems:
        print("akson serve: refusing to start outside demo mode (`--demo`):", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    # uvicorn re-raises the signal that stopped it; as an exception, SIGTERM still runs the cleanup below.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    components = start_components(settings)
    try:
        asyncio.run(
            _prepare(
                components.database_url,
                patients=args.demo_patients if args.demo else None,
                observations=None,
                fresh=False,
                only_if_empty=True,
            )
        )
        os.environ["DATABASE_URL"] = components.database_url
        os.environ["CERBOS_URL"] = components.cerbos_target
        print(f"Akson Gateway on http://{args.host}:{args.port}/graphql (GraphiQL in the browser)", flush=True)
        if args.demo:
            os.environ["AKSON_DEMO"] = "1"
            os.environ.setdefault("AKSON_PUBLIC_URL", f"http://{args.host}:{args.port}")
            # The demo's webhook receivers run on this machine (examples/webhook_receiver.py).
            os.environ.setdefault("AKSON_WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")
            print("Demo tokens: `akson token --persona NAME`; personas: `akson personas`", flush=True)
        uvicorn.run(
            "gateway.app:create_app", factory=True, host=args.host, port=args.port, workers=args.workers, **SERVER
        )
    finally:
        components.stop()
    return 0


async def _app_scopes(url: str, client_id: str) -> list[str] | None:
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            "SELECT requested_scopes FROM app "
            "WHERE client_id = $1 AND status = 'approved' AND kind = 'backend-service'",
            client_id,
        )
        return None if row is None else list(row["requested_scopes"])
    finally:
        await conn.close()


def _app_token(settings: Settings, client_id: str) -> int:
    url, stop = start_database(settings)
    try:
        scopes = asyncio.run(_app_scopes(url, client_id))
    finally:
        if stop:
            stop()
    if scopes is None:
        print(f"no approved backend service {client_id!r} is registered", file=sys.stderr)
        return 2
    now = int(time.time())
    claims = {
        "iss": settings.issuer,
        "aud": settings.audience,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
        "sub": client_id,
        "client_id": client_id,
        "scope": " ".join(scopes),
    }
    key = demo_issuer.load_or_create_key(settings.demo_key_path)
    print(f"# system token for {client_id} (valid 5 min)", file=sys.stderr)
    print(demo_issuer.sign(claims, key))
    return 0


def _cmd_token(settings: Settings, args: argparse.Namespace) -> int:
    if args.app:
        return _app_token(settings, args.app)
    persona = PERSONAS.get(args.persona)
    if persona is None:
        print(f"unknown persona {args.persona!r}; known: {', '.join(PERSONAS)}", file=sys.stderr)
        return 2
    key = demo_issuer.load_or_create_key(settings.demo_key_path)
    claims = demo_issuer.persona_claims(persona, issuer=settings.issuer, audience=settings.audience)
    print(
        f"# {persona.name}: {persona.description} (valid {demo_issuer.TOKEN_LIFETIME_SECONDS // 60} min)",
        file=sys.stderr,
    )
    print(demo_issuer.sign(claims, key))
    return 0


def patient_global_id(raw: object) -> str:
    """The API's global id of a patient."""
    return global_id_of("Patient", raw)


def _cmd_personas(settings: Settings, args: argparse.Namespace) -> int:
    width = max(len(name) for name in PERSONAS)
    for persona in PERSONAS.values():
        ident = f"patient {patient_global_id(persona.entity_id)}" if persona.kind == "citizen" else persona.kind
        print(f"{persona.name:<{width}}  {ident:<44}  {persona.description}")
    return 0


async def _recent_audit(conn: asyncpg.Connection, last: int) -> list[asyncpg.Record]:
    rows = await conn.fetch(
        """SELECT recorded_at, actor_kind, coalesce(actor_hpr_number, actor_id) AS actor, client_id,
                  patient_id, resource_kind, action, decision, reason
             FROM audit_event ORDER BY id DESC LIMIT $1""",
        last,
    )
    return list(reversed(rows))


async def _with_conn(url: str, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    conn = await asyncpg.connect(url)
    try:
        return await work(conn)
    finally:
        await conn.close()


def _print_report(report: ChainReport) -> int:
    start = f" after checkpoint row {report.continued_after}" if report.continued_after else ""
    if report.broken_at is None:
        print(f"audit chain intact: {report.checked} rows verified{start}")
        return 0
    print(f"audit chain BROKEN at row {report.broken_at}: {report.problem} ({report.checked} rows checked{start})")
    return 3


def _cmd_audit(settings: Settings, args: argparse.Namespace) -> int:
    url, stop = start_database(settings)
    seal = AuditSeal(load_or_create_key(settings.audit_key_path))
    try:
        if args.action == "verify":
            return _print_report(asyncio.run(_with_conn(url, lambda c: verify_chain(c, seal, full=args.full))))
        if args.action == "verify-archives":
            problems = asyncio.run(_with_conn(url, lambda c: verify_archives(c, seal, settings.audit_archive_dir)))
            for problem in problems:
                print(f"archive BROKEN: {problem}")
            if not problems:
                print(f"archives intact ({settings.audit_archive_dir})")
            return 3 if problems else 0
        if args.action == "archive":
            if args.before is None:
                print("akson audit archive: --before YYYY-MM-DD is required", file=sys.stderr)
                return 2
            before = args.before

            async def archive(conn: asyncpg.Connection) -> list[Archived]:
                return await archive_before(conn, seal, before, settings.audit_archive_dir)

            try:
                done = asyncio.run(_with_conn(url, archive))
            except ValueError as exc:
                print(f"akson audit archive: {exc}", file=sys.stderr)
                return 3
            for month in done:
                print(f"archived {month.partition}: {month.rows} rows -> {month.path}")
            if not done:
                print(f"no month ends on or before {before}; nothing archived")
            return 0
        rows = asyncio.run(_with_conn(url, lambda c: _recent_audit(c, args.last)))
    finally:
        if stop:
            stop()
    for r in rows:
        print(
            f"{r['recorded_at']:%Y-%m-%d %H:%M:%S}  {r['decision']:<5} {r['reason'] or '-':<20} "
            f"{r['actor_kind']}:{r['actor']}  app={r['client_id']}  {r['resource_kind']}.{r['action']} "
            f"patient={r['patient_id'] or '-'}"
        )
    return 0


def _cmd_schema(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.schema import build_schema

    print(build_schema(settings).as_str())
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command line; each subcommand documents itself with --help."""
    parser = argparse.ArgumentParser(prog="akson", description="Akson Gateway: GraphQL over the municipal journal.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway (starts PostgreSQL and Cerbos when not given)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument(
        "--demo",
        action="store_true",
        help="demo mode: trust the demo issuer and persona tokens, and seed the demo journal when the database "
        "is empty (without it, AKSON_JWKS_URL and AKSON_PUBLIC_URL are required)",
    )
    serve.add_argument("--demo-patients", type=int, default=DEMO_PATIENTS)
    serve.set_defaults(handler=_cmd_serve)

    sub.add_parser("migrate", help="apply pending migrations").set_defaults(handler=_cmd_migrate)

    seed_cmd = sub.add_parser("seed", help="load a deterministic synthetic population")
    seed_cmd.add_argument("--patients", type=int, default=DEMO_PATIENTS)
    seed_cmd.add_argument("--observations", type=int, default=None, help="default: 40 per patient")
    seed_cmd.add_argument("--reset", action="store_true", help="empty the journal tables first")
    seed_cmd.set_defaults(handler=_cmd_seed)

    token = sub.add_parser("token", help="print a demo bearer token (alone on the last line)")
    who = token.add_mutually_exclusive_group(required=True)
    who.add_argument("--persona", help="see `akson personas`")
    who.add_argument("--app", help="client id of an approved backend service: a system token for its scopes")
    token.set_defaults(handler=_cmd_token)

    sub.add_parser("personas", help="list the demo personas").set_defaults(handler=_cmd_personas)
    sub.add_parser("schema", help="print the GraphQL schema (SDL)").set_defaults(handler=_cmd_schema)

    add_policy_commands(sub)
    add_org_commands(sub)
    add_document_commands(sub, DEMO_BASE_URL)

    audit = sub.add_parser(
        "audit",
        help="show recent audit records; verify the chain (from the last signed checkpoint, or --full); "
        "archive months ending on or before --before to files; verify those files",
    )
    audit.add_argument(
        "action", nargs="?", choices=["recent", "verify", "archive", "verify-archives"], default="recent"
    )
    audit.add_argument("--last", type=int, default=20)
    audit.add_argument("--full", action="store_true", help="verify from the first row, not the last checkpoint")
    audit.add_argument("--before", type=date.fromisoformat, help="archive: months ending on or before this day")
    audit.set_defaults(handler=_cmd_audit)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `akson` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(load_settings(), args))
    except (MigrationError, ComponentError, ValueError) as exc:
        print(f"akson: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
