"""The examples a vendor developer starts from run against a real gateway."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.change_feed import decode_position
from gateway.components import free_port
from gateway.personas import CITIZEN_PATIENT_ID, PERSONAS
from tests.conftest import CITIZEN, PROJECT, Gateway, gid
from tests.live_clients import deliver_report, own_patient, record_heart_rate


def run_example(script: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """An example as a developer runs it, from the project folder, with `env` (its URL and token)."""
    return subprocess.run(
        [sys.executable, f"examples/{script}", *args], capture_output=True, text=True, cwd=PROJECT, env=env, check=False
    )


def test_the_list_patients_example_pages_through_exactly_the_visible_patients(gateway: Gateway) -> None:
    env = {
        **os.environ,
        "AKSON_URL": gateway.base_url,
        "AKSON_TOKEN": gateway.token("homecare-nurse"),
        "AKSON_PAGE_SIZE": "10",
    }
    done = run_example("list_patients.py", env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    total = gateway.query("{ patients(first: 1) { totalCount } }", "homecare-nurse")["data"]["patients"]["totalCount"]
    assert len(lines) == total > 10
    assert done.stderr.strip() == f"{total} of {total} patients"


def test_the_first_query_script_shows_a_patient_then_a_refusal(gateway: Gateway) -> None:
    env = {**os.environ, "AKSON_URL": gateway.base_url, "AKSON_DATA_DIR": str(gateway.data_dir)}
    script = (
        (PROJECT / "examples" / "first_query.sh")
        .read_text()
        .replace(".venv/bin/akson", f"{sys.executable} -m gateway.cli")
    )
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=PROJECT, env=env, check=False)
    assert done.returncode == 0, done.stderr
    nurse, other = done.stdout.split("== as nurse-other-municipality")
    assert '"name":{"text":"Ola Nordmann"}' in nurse
    assert '"code":"FORBIDDEN"' in other and '"reason":"NO_CARE_RELATION"' in other and "Nordmann" not in other


def test_the_patient_journal_example_prints_the_journal_or_the_refusal(gateway: Gateway) -> None:
    def run_as(persona: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "AKSON_URL": gateway.base_url, "AKSON_TOKEN": gateway.token(persona)}
        return run_example("patient_journal.py", CITIZEN, env=env)

    nurse = run_as("homecare-nurse")
    assert nurse.returncode == 0, nurse.stderr
    assert nurse.stdout.startswith("Ola Nordmann, born 1941-04-30")
    assert "ALLERGY" in nurse.stdout and "medicine" in nurse.stdout and "plan Plan for hjemmesykepleie" in nurse.stdout
    other = run_as("nurse-other-municipality")
    assert other.returncode == 1 and other.stdout == ""
    assert "FORBIDDEN (NO_CARE_RELATION)" in other.stderr


def test_the_backend_service_example_registers_gets_approved_and_reads_the_directory(
    gateway: Gateway, tmp_path: Path
) -> None:
    key = tmp_path / "planner-key.json"

    def example(*args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "AKSON_URL": gateway.base_url, **({"AKSON_TOKEN": token} if token else {})}
        return run_example("backend_service.py", *args, "--key", str(key), env=env)

    registered = example("register", token=gateway.token("vendor-app"))
    assert registered.returncode == 0, registered.stderr
    client_id = registered.stdout.strip().splitlines()[-1]
    early = example("run", "--client-id", client_id)
    assert early.returncode != 0 and "token refused" in early.stderr
    approve = 'mutation($id: String!) { approveApp(clientId: $id, reason: "example") { status } }'
    assert gateway.query(approve, "policy-admin", {"id": client_id})["data"]["approveApp"]["status"] == "APPROVED"
    ran = example("run", "--client-id", client_id)
    assert ran.returncode == 0, ran.stderr
    units = gateway.fetch("SELECT count(*) AS n FROM organization")[0]["n"]
    assert "hjemmetjeneste" in ran.stdout and ran.stderr.strip() == f"{units} units"


def test_the_homecare_visit_example_documents_a_visit_and_survives_its_own_retry(gateway: Gateway) -> None:
    # A day far ahead, where the seeded journal has no visits: the example's first visit is this one.
    today = datetime(2031, 3, 4, 9, 0, tzinfo=UTC)
    booked = gateway.query(
        "mutation($input: AppointmentInput!) { createAppointment(input: $input) { id } }",
        "homecare-integration",
        {
            "input": {
                "patientId": CITIZEN,
                "serviceType": "Hjemmebesøk",
                "description": "Blodtrykk og puls",
                "start": today.isoformat(),
                "end": (today + timedelta(minutes=30)).isoformat(),
            }
        },
    )
    assert "errors" not in booked, booked
    before = gateway.fetch("SELECT count(*) AS n FROM observation WHERE patient_id = $1", CITIZEN_PATIENT_ID)[0]["n"]
    env = {
        **os.environ,
        "AKSON_URL": gateway.base_url,
        "AKSON_TOKEN": gateway.token("homecare-nurse"),
        "AKSON_DAY": today.date().isoformat(),
    }
    done = run_example("homecare_visit.py", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("09:00 Hjemmebesøk: Ola Nordmann\n"), done.stdout
    assert "encounter opened (in_progress)" in done.stdout
    assert "retried the first measurement: the same observation, nothing written twice" in done.stdout
    assert "recorded Systolic blood pressure: 138 mm[Hg]" in done.stdout
    assert done.stdout.rstrip().endswith("encounter finished (version 2)")
    after = gateway.fetch("SELECT count(*) AS n FROM observation WHERE patient_id = $1", CITIZEN_PATIENT_ID)[0]["n"]
    assert after == before + 3


def test_the_lab_delivery_example_delivers_a_panel_the_gp_then_reads(gateway: Gateway) -> None:
    number = gateway.fetch("SELECT national_id FROM patient WHERE id = $1", CITIZEN_PATIENT_ID)[0]["national_id"]
    requester = gid("Practitioner", PERSONAS["gp"].entity_id)
    env = {**os.environ, "AKSON_URL": gateway.base_url, "AKSON_TOKEN": gateway.token("lab-service")}
    done = run_example("lab_delivery.py", number, requester, env=env)
    assert done.returncode == 0, done.stderr
    assert "with 3 results" in done.stdout and "the same report, nothing delivered twice" in done.stdout
    assert "read back: Normal blodstatus." in done.stdout
    report = done.stdout.strip().splitlines()[-1]
    seen = gateway.query(
        "query($id: ID!) { node(id: $id) { ... on DiagnosticReport { conclusion results(first: 5) { totalCount } } } }",
        "gp",
        {"id": report},
    )
    assert seen["data"]["node"] == {"conclusion": "Normal blodstatus.", "results": {"totalCount": 3}}


def started(example: str, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """A long-running example, its output readable line by line as it goes."""
    return subprocess.Popen(
        [sys.executable, example, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=PROJECT,
        env=env,
    )


def test_the_lab_result_notifier_prints_a_report_as_the_laboratory_delivers_it(gateway: Gateway) -> None:
    patient = own_patient(gateway)
    env = {
        **os.environ,
        "AKSON_URL": gateway.base_url,
        "AKSON_TOKEN": gateway.token("gp"),
        "AKSON_NOTIFY_COUNT": "1",
    }
    notifier = started("examples/lab_result_notifier.py", env)
    try:
        assert notifier.stdout is not None and notifier.stdout.readline().strip() == "listening for lab results"
        deliver_report(gateway, patient.national_id, "Lett forhøyet CRP")
        out, err = notifier.communicate(timeout=20)
    finally:
        notifier.kill()
    assert notifier.returncode == 0, err
    printed, cursor = out.strip().splitlines()
    assert "created: Test Hendelse, " in printed
    assert "Lett forhøyet CRP" in printed and "Hemoglobin" in printed
    assert decode_position(cursor) > 0


def test_the_webhook_receiver_checks_signatures_and_fetches_each_change_through_the_api(gateway: Gateway) -> None:
    patient = own_patient(gateway, homecare=True)
    port = free_port()
    env = {
        **os.environ,
        "AKSON_URL": gateway.base_url,
        "AKSON_TOKEN": gateway.token("homecare-integration"),
        "AKSON_RECEIVE_SECONDS": "4",
    }
    receiver = started("examples/webhook_receiver.py", env, str(port))
    try:
        assert receiver.stdout is not None and receiver.stdout.readline().startswith("endpoint ")
        record_heart_rate(gateway, patient.gid, value=88)
        out, err = receiver.communicate(timeout=30)
    finally:
        receiver.kill()
    assert receiver.returncode == 0, err
    assert out.strip().splitlines() == ["OBSERVATION CREATED v1: Heart rate for Test Hendelse"]
    endpoints = gateway.query("{ webhookEndpoints { url status } }", "homecare-integration")["data"]["webhookEndpoints"]
    assert {"url": f"http://127.0.0.1:{port}/hook", "status": "DISABLED"} in endpoints


def test_the_municipal_export_example_counts_what_graphql_totals_for_the_same_caller(
    gateway: Gateway, tmp_path: Path
) -> None:
    token = gateway.token("homecare-integration")
    env = {**os.environ, "AKSON_URL": gateway.base_url, "AKSON_TOKEN": token}
    done = run_example("municipal_export.py", "Fjordvik", str(tmp_path), env=env)
    assert done.returncode == 0, done.stderr
    counts = {line.split()[0]: int(line.split()[1]) for line in done.stdout.splitlines()}
    roots = {"Patient": "patients", "Encounter": "encounters", "Observation": "observations", "CarePlan": "carePlans"}
    roots["Appointment"] = "appointments"
    for kind, root in roots.items():
        total = gateway.post(f"{{ {root}(first: 1) {{ totalCount }} }}", token=token).json()["data"][root]
        assert counts.get(kind, 0) == total["totalCount"] > 0, kind
    assert set(counts) == set(roots)
    assert len((tmp_path / "Observation.ndjson").read_bytes().splitlines()) == counts["Observation"]
