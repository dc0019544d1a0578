"""FHIR Bulk Data export (Bulk Data Access IG 2.0): `$export` at system, Patient and Group level.

A kick-off (`Prefer: respond-async`) records the export and answers 202 with its status URL; the export
runs in the process that took it, reading the journal through the caller's own store, so it holds exactly
what the caller's policy lets them search: every kind's rows are filtered inside SQL by its query plan,
a batch of patients at a time (`Settings.export_patients_per_batch`, what the export holds in memory),
and every batch's resources are audited (action `export`, one record per patient and kind) before the
next is read. The NDJSON files (one per type) are served only to the caller who asked, until they expire
(`Settings.export_expiry_seconds`); DELETE cancels an export or deletes its files.

A Group is a municipality or a unit: a municipality's members are its residents, a unit's the patients it
manages or has a care relation with. The membership only chooses which patients to read; what of theirs
leaves is the policy's decision, as for any search.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import asyncpg
import orjson
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from gateway import deadline
from gateway.audit import AuditRecord
from gateway.config import Settings
from gateway.context import Context
from gateway.declare import ResourceKind
from gateway.errors import AksonError, BadUserInput, MethodNotAllowed, NotFound, RateLimited
from gateway.fhir_api import BASE_PATH, FHIR_JSON, error_response, fhir_endpoint, fhir_response, public_base, resources
from gateway.fhir_resources import FHIR_KINDS, fhir_map
from gateway.fhir_search import list_args
from gateway.runtime import runtime_of
from gateway.sql import EMPTY, Sql, sql, value
from gateway.store import ListArgs, fetch

log = logging.getLogger(__name__)
NDJSON = "application/fhir+ndjson"
OUTPUT_FORMATS = {NDJSON, "application/ndjson", "ndjson"}
_PARAMETERS = {"_type", "_since", "_outputFormat"}
SWEEP_SECONDS = 60
# An export whose process has not written a batch for this long is taken to have died with its process.
STALE_SECONDS = 300


@dataclass(frozen=True)
class ExportRequest:
    """What one kick-off asked for."""

    level: str
    group_id: uuid.UUID | None
    kinds: tuple[ResourceKind, ...]
    since: datetime | None


def _kinds(level: str, raw: str | None) -> tuple[ResourceKind, ...]:
    """The kinds an export holds: those `_type` names, or all it may hold at its level (Patient and Group
    exports hold the patients' compartments, a system export the directory as well)."""
    allowed = [k for k in FHIR_KINDS.values() if level == "system" or k.is_patient_data]
    if not raw:
        return tuple(allowed)
    chosen: dict[str, ResourceKind] = {}
    for name in raw.split(","):
        kind = FHIR_KINDS.get(name.strip())
        if kind is None or kind not in allowed:
            raise BadUserInput(f"_type: {name.strip()!r} is not a type this {level} export holds", argument="_type")
        chosen[kind.name] = kind
    return tuple(chosen.values())


def export_request(request: Request, level: str) -> ExportRequest:
    """A kick-off's parameters, each checked (a parameter this server does not support is refused)."""
    if "respond-async" not in request.headers.get("prefer", ""):
        raise BadUserInput("a Bulk Data kick-off needs the header Prefer: respond-async", argument="Prefer")
    for name in request.query_params:
        if name not in _PARAMETERS:
            raise BadUserInput(f"$export does not support the parameter {name!r}", argument=name)
    output = request.query_params.get("_outputFormat", NDJSON)
    if output not in OUTPUT_FORMATS:
        raise BadUserInput(f"_outputFormat must be {NDJSON}", argument="_outputFormat")
    since = None
    if "_since" in request.query_params:
        args = list_args(FHIR_KINDS["Patient"], [("_lastUpdated", "ge" + request.query_params["_since"])], 1)
        since = dict(args.filters)["last_updated_from"]
    group = None
    if level == "group":
        try:
            group = uuid.UUID(request.path_params["id"])
        except ValueError as exc:
            raise NotFound("no Group with this id") from exc
    return ExportRequest(level, group, _kinds(level, request.query_params.get("_type")), since)


async def group_kind(pool: asyncpg.Pool, group_id: uuid.UUID) -> str | None:
    """Whether a Group id names a municipality or a unit (or nothing)."""
    return await pool.fetchval(  # type: ignore[no-any-return]
        "SELECT 'municipality' FROM municipality WHERE id = $1 UNION ALL SELECT 'unit' FROM organization WHERE id = $1",
        group_id,
    )


def _members(group_kind: str | None, group_id: uuid.UUID | None) -> Sql:
    """The condition on `patient p` of a group's members (every patient for Patient and system exports)."""
    if group_kind == "municipality":
        return sql("p.municipality_id = ", value(group_id, "uuid"))
    if group_kind == "unit":
        unit = value(group_id, "uuid")
        return sql(
            "(p.owning_unit_id = ",
            unit,
            " OR p.id IN (SELECT cr.patient_id FROM care_relation cr WHERE cr.organization_id = ",
            unit,
            "))",
        )
    return sql("TRUE")


class BulkExports:
    """The exports this process runs, and the sweeping of expired and abandoned ones (every minute)."""

    def __init__(self, settings: Settings, pool: asyncpg.Pool) -> None:
        self._settings = settings
        self._pool = pool
        self._tasks: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._sweeper: asyncio.Task[None] | None = None

    def folder(self, job: uuid.UUID) -> Path:
        return self._settings.export_dir / str(job)

    async def start_sweeping(self) -> None:
        """Sweep now, then every minute for as long as the process runs."""
        await self.sweep()

        async def every_minute() -> None:
            while True:
                await asyncio.sleep(SWEEP_SECONDS)
                try:
                    await self.sweep()
                except Exception as exc:  # a sweep that failed is tried again next minute
                    log.warning("sweeping bulk exports failed: %s", type(exc).__name__)

        self._sweeper = asyncio.get_running_loop().create_task(every_minute())

    def start(self, job: uuid.UUID, context: Context, asked: ExportRequest, group_kind: str | None) -> None:
        """Run an export in the background of this process."""
        task = asyncio.get_running_loop().create_task(self._run(job, context, asked, group_kind))
        self._tasks[job] = task
        task.add_done_callback(lambda _: self._tasks.pop(job, None))

    def cancel(self, job: uuid.UUID) -> None:
        """Stop an export running here (one running elsewhere sees its row cancelled at its next batch)."""
        task = self._tasks.get(job)
        if task is not None:
            task.cancel()

    async def close(self) -> None:
        """Stop sweeping and every export of this process; they are recorded as failed (their caller may ask
        again)."""
        for task in [*self._tasks.values(), *([self._sweeper] if self._sweeper else [])]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def sweep(self) -> None:
        """Fail exports whose process stopped beating (killed mid-export), delete the records and files of
        expired and cancelled ones, and any folder no record names."""
        await self._pool.execute(
            "UPDATE bulk_export SET status = 'failed', error = 'the gateway process running it stopped', "
            "completed_at = now(), expires_at = now() + interval '1 hour' "
            "WHERE status = 'running' AND heartbeat_at < now() - make_interval(secs => $1)",
            STALE_SECONDS,
        )
        await self._pool.execute("DELETE FROM bulk_export WHERE expires_at <= now() OR status = 'cancelled'")
        if not self._settings.export_dir.is_dir():
            return
        kept = {str(r["id"]) for r in await self._pool.fetch("SELECT id FROM bulk_export")}
        for folder in self._settings.export_dir.iterdir():
            if folder.name not in kept and folder.name not in {str(t) for t in self._tasks}:
                shutil.rmtree(folder, ignore_errors=True)

    async def _run(self, job: uuid.UUID, context: Context, asked: ExportRequest, group_kind: str | None) -> None:
        deadline.clear()
        folder = self.folder(job)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        writer = _Files(folder)
        try:
            await self._export(job, context, asked, group_kind, writer)
            writer.close()
            expires = datetime.now(UTC) + timedelta(seconds=self._settings.export_expiry_seconds)
            done = await self._pool.fetchval(
                "UPDATE bulk_export SET status = 'completed', completed_at = now(), expires_at = $2, "
                "output = $3::jsonb WHERE id = $1 AND status = 'running' RETURNING true",
                job,
                expires,
                orjson.dumps(writer.manifest()).decode(),
            )
            if not done:
                raise _Cancelled
        except BaseException as exc:
            writer.close()
            shutil.rmtree(folder, ignore_errors=True)
            if isinstance(exc, _Cancelled):
                return
            stopped = isinstance(exc, asyncio.CancelledError)
            reason = "the gateway stopped" if stopped else _failure(exc)
            if not stopped and not isinstance(exc, AksonError):
                log.exception("bulk export %s failed", job)
            with contextlib.suppress(Exception):
                await asyncio.shield(
                    self._pool.execute(
                        "UPDATE bulk_export SET status = 'failed', error = $2, completed_at = now(), "
                        "expires_at = now() + interval '1 hour' WHERE id = $1 AND status = 'running'",
                        job,
                        reason,
                    )
                )
            if stopped:
                raise

    async def _export(
        self, job: uuid.UUID, context: Context, asked: ExportRequest, group_kind: str | None, files: _Files
    ) -> None:
        """Write the export's files: the directory kinds page by page, then the patients' data a batch of
        patients at a time, each batch read as the journal says its caller is now (roles, grants, the app's
        status: looked up again, with fresh query plans) and audited before the next."""
        runtime = context.runtime
        since = (("last_updated_from", asked.since),) if asked.since else ()
        for kind in asked.kinds:
            if kind.is_patient_data:
                continue
            after = None
            while True:
                await context.look_up_principal_again()
                page = await context.store.page(
                    kind, ListArgs(first=context.store.max_page_size, after=after, filters=since)
                )
                files.write(kind, await resources(context.store, kind, [row for _, row in page.items]))
                if not page.has_next_page:
                    break
                after = page.items[-1][0]
        patient_kinds = [k for k in asked.kinds if k.is_patient_data]
        members = _members(group_kind, asked.group_id)
        last = None
        while patient_kinds:
            beyond = EMPTY if last is None else sql(" AND p.id > ", value(last, "uuid"))
            batch = [
                r["id"]
                for r in await fetch(
                    self._pool,
                    sql(
                        "SELECT p.id FROM patient p WHERE ",
                        members,
                        beyond,
                        " ORDER BY p.id LIMIT ",
                        value(self._settings.export_patients_per_batch, "integer"),
                    ),
                )
            ]
            if not batch:
                return
            beating = await self._pool.fetchval(
                "UPDATE bulk_export SET heartbeat_at = now(), resources_written = $2 WHERE id = $1 "
                "AND status = 'running' RETURNING true",
                job,
                sum(files.counts.values()),
            )
            if not beating:
                raise _Cancelled
            await context.look_up_principal_again()
            for kind in patient_kinds:
                rows = await context.store.of_patients(kind, batch, asked.since)
                files.write(kind, await resources(context.store, kind, rows))
            await context.audit.flush(runtime.audit_writer)
            last = batch[-1]


def _failure(exc: BaseException) -> str:
    """Why an export failed, as its caller may be told: our errors say it themselves, others are logged."""
    if isinstance(exc, AksonError):
        return exc.message
    return "the export failed; the error has been logged"


class _Cancelled(Exception):
    """The export's record was cancelled (DELETE) while it ran."""


class _Files:
    """One NDJSON file per type, written as batches come, and what each holds."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._open: dict[str, IO[bytes]] = {}
        self.counts: dict[str, int] = {}

    def write(self, kind: ResourceKind, found: list[dict[str, Any]]) -> None:
        if not found:
            return
        name = fhir_map(kind).resource
        handle = self._open.get(name)
        if handle is None:
            descriptor = os.open(self._folder / f"{name}.ndjson", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            handle = self._open[name] = os.fdopen(descriptor, "wb")
        handle.write(b"".join(orjson.dumps(resource) + b"\n" for resource in found))
        self.counts[name] = self.counts.get(name, 0) + len(found)

    def close(self) -> None:
        for handle in self._open.values():
            handle.close()
        self._open.clear()

    def manifest(self) -> list[dict[str, Any]]:
        return [{"type": name, "file": f"{name}.ndjson", "count": count} for name, count in self.counts.items()]


def _level(request: Request) -> str:
    if "id" in request.path_params:
        return "group"
    return "patient" if request.url.path.rstrip("/").endswith("/Patient/$export") else "system"


@fhir_endpoint(cost=lambda request: 1)
async def kick_off(request: Request, context: Context) -> Response:
    """`GET [/Patient|/Group/{id}]/$export`: start an export of what the caller may search; 202 with the
    status URL in Content-Location."""
    runtime = runtime_of(request.scope)
    if request.method != "GET":
        raise MethodNotAllowed("a Bulk Data export is started with GET", allow="GET")
    await runtime.exports.sweep()
    level = _level(request)
    asked = export_request(request, level)
    principal = context.principal
    running = await runtime.pool.fetchval(
        "SELECT count(*) FROM bulk_export WHERE client_id = $1 AND status = 'running'", principal.client_id
    )
    if running >= runtime.settings.exports_per_app:
        raise RateLimited(
            f"this app already runs {running} exports, as many as it may at once; try again when one has completed",
            retryAfter=60,
        )
    kind_of_group = None
    if asked.group_id is not None:
        kind_of_group = await group_kind(runtime.pool, asked.group_id)
        if kind_of_group is None:
            raise NotFound("no Group with this id: a Group is a municipality or a unit")
    job = uuid.uuid4()
    query = f"?{request.url.query}" if request.url.query else ""
    await runtime.pool.execute(
        "INSERT INTO bulk_export (id, client_id, requested_by, level, group_id, types, since, request_url, status, "
        "transaction_time) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'running', now())",
        job,
        principal.client_id,
        principal.ref,
        level,
        asked.group_id,
        [fhir_map(k).resource for k in asked.kinds],
        asked.since,
        f"{public_base(request)}{request.url.path.removeprefix(BASE_PATH)}{query}",
    )
    context.audit.record(AuditRecord(None, "bulk_export", (str(job),), "export", True, "EXPORT_STARTED"))
    runtime.exports.start(job, Context.build(runtime, request, principal), asked, kind_of_group)
    return Response(
        status_code=202,
        headers={"content-location": f"{public_base(request)}/$export-status/{job}", "cache-control": "no-store"},
    )


async def _own_export(request: Request, context: Context) -> asyncpg.Record:
    """The export named in the path, if the caller asked for it (any other looks missing)."""
    try:
        job = uuid.UUID(request.path_params["job"])
    except ValueError as exc:
        raise NotFound("no such export") from exc
    row = await runtime_of(request.scope).pool.fetchrow(
        "SELECT * FROM bulk_export WHERE id = $1 AND client_id = $2 AND requested_by = $3 "
        "AND status <> 'cancelled' AND (expires_at IS NULL OR expires_at > now())",
        job,
        context.principal.client_id,
        context.principal.ref,
    )
    if row is None:
        raise NotFound("no such export (it may have expired, or been cancelled)")
    return row


@fhir_endpoint(cost=lambda request: 1)
async def status(request: Request, context: Context) -> Response:
    """`GET $export-status/{job}`: 202 with X-Progress while it runs, the manifest when it is done, an
    OperationOutcome when it failed. `DELETE` cancels it or deletes its files."""
    row = await _own_export(request, context)
    runtime = runtime_of(request.scope)
    if request.method == "DELETE":
        await runtime.pool.execute("UPDATE bulk_export SET status = 'cancelled' WHERE id = $1", row["id"])
        runtime.exports.cancel(row["id"])
        await runtime.exports.sweep()
        context.audit.record(AuditRecord(None, "bulk_export", (str(row["id"]),), "cancel", True, "EXPORT_OWNER"))
        return Response(status_code=202, headers={"cache-control": "no-store"})
    if row["status"] == "running":
        return Response(
            status_code=202,
            headers={"x-progress": f"{row['resources_written']} resources written", "retry-after": "2"},
        )
    if row["status"] == "failed":
        return error_response(_ExportFailed(f"the export failed ({row['error']}); start it again"))
    base = public_base(request)
    manifest = {
        "transactionTime": row["transaction_time"].isoformat(),
        "request": row["request_url"],
        "requiresAccessToken": True,
        "output": [
            {"type": item["type"], "url": f"{base}/$export-file/{row['id']}/{item['file']}", "count": item["count"]}
            for item in orjson.loads(row["output"])
        ],
        "error": [],
    }
    return Response(
        orjson.dumps(manifest),
        media_type="application/json",
        headers={"expires": row["expires_at"].strftime("%a, %d %b %Y %H:%M:%S GMT"), "cache-control": "no-store"},
    )


class _ExportFailed(AksonError):
    """An export that could not be completed (its files are gone; the caller may start it again)."""

    code = "EXPORT_FAILED"
    http_status = 500


@fhir_endpoint(cost=lambda request: 1)
async def output_file(request: Request, context: Context) -> Response:
    """`GET $export-file/{job}/{Type}.ndjson`: one output file, to the caller who asked for the export."""
    row = await _own_export(request, context)
    name = request.path_params["file"]
    if row["status"] != "completed" or name not in {item["file"] for item in orjson.loads(row["output"])}:
        raise NotFound("no such file in this export")
    path = runtime_of(request.scope).exports.folder(row["id"]) / name
    if not path.is_file():
        raise NotFound("this export's files are not kept by this gateway process's export folder")
    context.audit.record(AuditRecord(None, "bulk_export", (str(row["id"]), name), "download", True, "EXPORT_OWNER"))
    return FileResponse(path, media_type=NDJSON, headers={"cache-control": "no-store"})


@fhir_endpoint(cost=lambda request: 1)
async def group(request: Request, context: Context) -> Response:
    """`GET /Group/{id}` and `GET /Group?name=`: municipalities and units as the Groups an export can name
    (their members are not listed: who they are is patient data)."""
    pool = runtime_of(request.scope).pool
    rid = request.path_params.get("id")
    rows = await pool.fetch(
        "SELECT id, name, NULL::uuid AS unit FROM municipality UNION ALL SELECT id, name, id FROM organization "
        "ORDER BY name, id"
    )
    found = [_group(r) for r in rows]
    if rid is not None:
        match = [g for g in found if g["id"] == rid]
        if not match:
            raise NotFound("no Group with this id: a Group is a municipality or a unit")
        return fhir_response(match[0])
    name = request.query_params.get("name", "").casefold()
    base = public_base(request)
    return fhir_response(
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [
                {"fullUrl": f"{base}/Group/{g['id']}", "resource": g, "search": {"mode": "match"}}
                for g in found
                if name in g["name"].casefold()
            ],
        }
    )


def _group(row: asyncpg.Record) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Group",
        "id": str(row["id"]),
        "type": "person",
        "actual": True,
        "name": row["name"],
    }
    if row["unit"] is not None:
        resource["managingEntity"] = {"reference": f"Organization/{row['unit']}"}
    return resource


def export_routes() -> list[Route]:
    """Bulk Data's routes, and Group's (before the read routes, which would take `Group/{id}`)."""
    return [
        Route(f"{BASE_PATH}/$export", kick_off),
        Route(f"{BASE_PATH}/Patient/$export", kick_off),
        Route(f"{BASE_PATH}/Group/{{id}}/$export", kick_off),
        Route(f"{BASE_PATH}/$export-status/{{job}}", status, methods=["GET", "DELETE"]),
        Route(f"{BASE_PATH}/$export-file/{{job}}/{{file}}", output_file),
        Route(f"{BASE_PATH}/Group/{{id}}", group),
        Route(f"{BASE_PATH}/Group", group),
    ]


__all__ = ["FHIR_JSON", "BulkExports", "export_routes"]
