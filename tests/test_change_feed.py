"""The outbox and the change feed: every committed write leaves its change event in its own transaction, numbered
in commit order; the feed hands out, in that order and exactly once, the changes the caller may read now,
filtered in SQL by the same policy as reads, and audits each one."""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid
from typing import Any

import asyncpg
import pytest

from gateway.change_feed import ChangeFilter, decode_position, encode_position
from gateway.db import GATEWAY_ROLE
from gateway.errors import BadUserInput
from gateway.resources import DIAGNOSTIC_REPORT, OBSERVATION
from tests.conftest import Gateway, gid, raw_id, run
from tests.live_clients import approved_app, deliver_report, end_care, head_cursor, own_patient, record_heart_rate

FEED = """query($after: String, $first: Int!, $kinds: [ResourceKind!], $patient: ID) {
  changes(after: $after, first: $first, kinds: $kinds, patientId: $patient) {
    edges { cursor node { cursor kind action version committedAt resourceId node { id } } }
    pageInfo { hasNextPage endCursor } } }"""
UPDATE_OBSERVATION = """mutation($id: ID!, $v: Int!) {
  updateObservation(id: $id, expectedVersion: $v, input: {valueQuantity: {value: 74}}) { id version } }"""
ENTERED_IN_ERROR = 'mutation($id: ID!) { enteredInError(id: $id, reason: "wrong patient") { id } }'


def feed(gateway: Gateway, persona: str, after: str | None, **arguments: Any) -> dict[str, Any]:
    answer = gateway.query(FEED, persona, {"after": after, "first": arguments.pop("first", 100), **arguments})
    assert "errors" not in answer, answer
    changes: dict[str, Any] = answer["data"]["changes"]
    return changes


def drain(gateway: Gateway, persona: str, after: str, **arguments: Any) -> tuple[list[dict[str, Any]], str]:
    """Every change after `after`, page by page, and the cursor to continue from."""
    seen: list[dict[str, Any]] = []
    while True:
        page = feed(gateway, persona, after, **arguments)
        seen.extend(edge["node"] for edge in page["edges"])
        after = page["pageInfo"]["endCursor"]
        if not page["pageInfo"]["hasNextPage"]:
            return seen, after


def events_of(gateway: Gateway, resource_id: str) -> list[asyncpg.Record]:
    return gateway.fetch(
        "SELECT seq, resource_kind, patient_id, action, version, client_id, actor FROM change_event "
        "WHERE resource_id = $1 ORDER BY seq",
        resource_id,
    )


def test_every_write_leaves_its_change_event_with_kind_patient_action_version_and_app(gateway: Gateway) -> None:
    patient = own_patient(gateway, homecare=True)
    observation = record_heart_rate(gateway, patient.gid)
    updated = gateway.query(UPDATE_OBSERVATION, "homecare-nurse", {"id": observation, "v": 1})
    assert "errors" not in updated, updated
    marked = gateway.query(ENTERED_IN_ERROR, "homecare-nurse", {"id": observation})
    assert "errors" not in marked, marked
    events = events_of(gateway, raw_id(observation))
    assert [(e["action"], e["version"]) for e in events] == [("created", 1), ("updated", 2), ("entered-in-error", 3)]
    assert {e["resource_kind"] for e in events} == {"observation"} and {e["patient_id"] for e in events} == {patient.id}
    assert {e["client_id"] for e in events} == {"akson-demo-app"}
    assert [e["seq"] for e in events] == sorted({e["seq"] for e in events})
    registered = events_of(gateway, str(patient.id))
    assert [(e["resource_kind"], e["action"]) for e in registered] == [("patient", "created")]
    care = events_of(gateway, raw_id(patient.care["homecare"][0]))
    assert [(e["resource_kind"], e["action"], e["patient_id"]) for e in care] == [
        ("care_relation", "created", patient.id)
    ]


def test_registry_changes_are_changes_too(gateway: Gateway) -> None:
    client = approved_app(gateway, ["user/Patient.rs"])
    assert [(e["resource_kind"], e["action"], e["version"]) for e in events_of(gateway, client)] == [
        ("app", "created", 1),
        ("app", "updated", 2),
    ]
    admin, _ = drain(gateway, "policy-admin", encode_position(events_of(gateway, client)[0]["seq"] - 1), kinds=["APP"])
    assert (client, "UPDATED", 2) in [(c["resourceId"], c["action"], c["version"]) for c in admin]
    assert all(c["node"] is None for c in admin)


def test_a_write_that_is_refused_leaves_no_change_event(gateway: Gateway) -> None:
    patient = own_patient(gateway)
    before = gateway.fetch("SELECT last_seq FROM change_head")[0]["last_seq"]
    refused = gateway.query(
        """mutation($input: ObservationInput!) { createObservation(input: $input) { id } }""",
        "nurse-other-municipality",
        {
            "input": {
                "patientId": patient.gid,
                "code": {"system": "http://loinc.org", "code": "8867-4"},
                "valueQuantity": {"value": 80},
                "effectiveDateTime": "2026-12-02T08:00:00Z",
            }
        },
    )
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert not gateway.fetch("SELECT 1 FROM change_event WHERE seq > $1 AND patient_id = $2", before, patient.id)


def test_the_gateway_role_can_read_the_outbox_but_not_write_it(gateway: Gateway) -> None:
    async def attempt() -> None:
        conn = await asyncpg.connect(gateway.database_url, server_settings={"role": GATEWAY_ROLE})
        try:
            assert await conn.fetchval("SELECT count(*) > 0 FROM change_event")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(
                    "INSERT INTO change_event (resource_kind, resource_id, action, version) "
                    "VALUES ('patient', 'x', 'created', 1)"
                )
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute("UPDATE change_head SET last_seq = 0")
        finally:
            await conn.close()

    run(attempt())


def test_a_change_that_commits_late_is_numbered_after_the_changes_committed_before_it(gateway: Gateway) -> None:
    """Two writers: the first starts earlier but commits later. A reader who read up to the second commit must
    still get the first one after its cursor, never skip it."""
    patient = own_patient(gateway, homecare=True)
    early, late = record_heart_rate(gateway, patient.gid), record_heart_rate(gateway, patient.gid)
    start = head_cursor(gateway)

    async def interleave() -> None:
        first = await asyncpg.connect(gateway.database_url)
        second = await asyncpg.connect(gateway.database_url)
        try:
            slow = first.transaction()
            await slow.start()
            await first.execute("UPDATE observation SET value_quantity = 75 WHERE id = $1", uuid.UUID(raw_id(early)))
            await second.execute("UPDATE observation SET value_quantity = 76 WHERE id = $1", uuid.UUID(raw_id(late)))
            seen, after = await asyncio.to_thread(drain, gateway, "gp", start, patient=patient.gid)
            assert [(c["resourceId"], c["version"]) for c in seen] == [(late, 2)]
            await slow.commit()
            later, _ = await asyncio.to_thread(drain, gateway, "gp", after, patient=patient.gid)
            assert [(c["resourceId"], c["version"]) for c in later] == [(early, 2)]
            assert decode_position(later[0]["cursor"]) > decode_position(seen[0]["cursor"])
        finally:
            await first.close()
            await second.close()

    run(interleave())


def test_concurrent_writers_reach_a_concurrent_reader_in_commit_order_exactly_once(gateway: Gateway) -> None:
    patient = own_patient(gateway, homecare=True)
    start = head_cursor(gateway)
    writers, each = 6, 8
    seen: list[dict[str, Any]] = []
    after = start
    with concurrent.futures.ThreadPoolExecutor(max_workers=writers) as pool:
        written = [
            pool.submit(lambda: [record_heart_rate(gateway, patient.gid) for _ in range(each)]) for _ in range(writers)
        ]
        while True:
            finished = all(w.done() for w in written)
            page, after = drain(gateway, "homecare-nurse", after, patient=patient.gid, kinds=["OBSERVATION"])
            seen.extend(page)
            if finished:
                break
        made = {o for w in written for o in w.result()}
    positions = [decode_position(c["cursor"]) for c in seen]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert [c["resourceId"] for c in seen if c["action"] == "CREATED"] == [c["resourceId"] for c in seen]
    assert {c["resourceId"] for c in seen} == made and len(seen) == writers * each
    committed = gateway.fetch(
        "SELECT resource_id FROM change_event WHERE seq > $1 AND patient_id = $2 AND resource_kind = 'observation' "
        "ORDER BY seq",
        decode_position(start),
        patient.id,
    )
    assert [gid("Observation", r["resource_id"]) for r in committed] == [c["resourceId"] for c in seen]


def test_the_feed_shows_a_change_only_to_whom_may_read_its_resource_now(gateway: Gateway) -> None:
    patient = own_patient(gateway)
    start = head_cursor(gateway)
    report = deliver_report(gateway, patient.national_id)
    gp, _ = drain(gateway, "gp", start, kinds=["DIAGNOSTIC_REPORT"])
    assert report in [c["resourceId"] for c in gp] and report in [c["node"]["id"] for c in gp]
    stranger, stranger_end = drain(gateway, "nurse-other-municipality", start, kinds=["DIAGNOSTIC_REPORT"])
    assert report not in [c["resourceId"] for c in stranger]
    assert decode_position(stranger_end) >= decode_position(gp[-1]["cursor"])
    end_care(gateway, patient, "gp")
    after_ending, _ = drain(gateway, "gp", start, kinds=["DIAGNOSTIC_REPORT"])
    assert report not in [c["resourceId"] for c in after_ending]


def test_every_change_handed_out_is_audited_as_a_read_through_the_feed(gateway: Gateway) -> None:
    patient = own_patient(gateway)
    start = head_cursor(gateway)
    report = deliver_report(gateway, patient.national_id)
    seen, _ = drain(gateway, "gp", start, patient=patient.gid)
    assert report in [c["resourceId"] for c in seen]
    audited = gateway.fetch(
        "SELECT resource_kind, resource_ids, decision FROM audit_event WHERE action = 'feed' AND patient_id = $1 "
        "AND actor_id = $2",
        patient.id,
        "c0ffee00-0000-4000-8000-000000000102",
    )
    assert ("diagnostic_report", "ALLOW") in {(a["resource_kind"], a["decision"]) for a in audited}
    assert raw_id(report) in {i for a in audited for i in a["resource_ids"]}


def test_an_empty_page_still_moves_the_cursor_on_and_filters_are_kept(gateway: Gateway) -> None:
    start = head_cursor(gateway)
    patient = own_patient(gateway, homecare=True)
    record_heart_rate(gateway, patient.gid)
    page = feed(gateway, "homecare-nurse", start, kinds=["APPOINTMENT"], patient=patient.gid)
    assert page["edges"] == [] and decode_position(page["pageInfo"]["endCursor"]) > decode_position(start)
    rest = feed(gateway, "homecare-nurse", page["pageInfo"]["endCursor"], kinds=["APPOINTMENT"], patient=patient.gid)
    assert rest["edges"] == [] and rest["pageInfo"] == {
        "hasNextPage": False,
        "endCursor": page["pageInfo"]["endCursor"],
    }


@pytest.mark.parametrize(
    ("arguments", "argument"),
    [
        ({"after": "bm90IGEgY3Vyc29y", "first": 10}, "after"),
        ({"after": None, "first": 0}, "first"),
        ({"after": None, "first": 101}, "first"),
        ({"after": None, "first": 10, "kinds": []}, "kinds"),
        ({"after": None, "first": 10, "patient": gid("Observation", uuid.uuid4())}, "id"),
    ],
)
def test_bad_feed_arguments_are_typed_errors(gateway: Gateway, arguments: dict[str, Any], argument: str) -> None:
    answer = gateway.query(FEED, "gp", arguments)
    assert answer["data"] is None
    assert answer["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "argument": argument}


def test_a_position_round_trips_and_foreign_cursors_are_refused() -> None:
    assert decode_position(encode_position(12345)) == 12345
    for foreign in ["", "x", encode_position(1).replace("Y", "Z"), "WyJ2MSIsIk9ic2VydmF0aW9uIiwxXQ"]:
        with pytest.raises(BadUserInput):
            decode_position(foreign)


def test_a_filter_wants_a_batch_only_when_one_of_its_events_could_pass() -> None:
    patient = uuid.uuid4()
    batch: dict[str, set[str | None]] = {"observation": {str(patient)}, "organization": {None}}
    assert ChangeFilter().wants_any(batch)
    assert ChangeFilter(kinds=(OBSERVATION,)).wants_any(batch)
    assert not ChangeFilter(kinds=(DIAGNOSTIC_REPORT,)).wants_any(batch)
    assert ChangeFilter(patient_id=patient).wants_any(batch)
    assert not ChangeFilter(patient_id=uuid.uuid4()).wants_any(batch)
    assert ChangeFilter(unit_id=uuid.uuid4()).wants_any(batch)
    assert not ChangeFilter(unit_id=uuid.uuid4()).wants_any({"organization": {None}})
