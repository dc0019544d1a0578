"""Third-party apps get at most their SMART scopes AND the user's rights (DESIGN.md rule 6)."""

from __future__ import annotations

from gateway.personas import CHILD_PATIENT_ID, CITIZEN_PATIENT_ID
from tests.conftest import CITIZEN, Gateway, gid

JOURNAL = """query($id: ID!) { patient(id: $id) { id
  encounters(first: 5) { totalCount }
  observations(first: 100) { totalCount edges { node { category } } } } }"""


def test_an_app_scoped_to_demographics_reads_the_patient_but_no_clinical_data(gateway: Gateway) -> None:
    token = gateway.token("homecare-nurse", scope="openid user/Patient.rs")
    result = gateway.post(JOURNAL, token=token, variables={"id": CITIZEN}).json()
    patient = result["data"]["patient"]
    assert patient["id"] == CITIZEN
    assert patient["encounters"]["totalCount"] == 0 and patient["observations"]["totalCount"] == 0
    encounter = gateway.fetch("SELECT id FROM encounter WHERE patient_id = $1 LIMIT 1", CITIZEN_PATIENT_ID)[0]["id"]
    node = gateway.post(
        "query($id: ID!) { node(id: $id) { id } }", token=token, variables={"id": gid("Encounter", encounter)}
    ).json()
    assert node["data"] == {"node": None}
    assert node["errors"][0]["extensions"]["reason"] == "APP_SCOPE"


def test_a_patient_context_app_sees_only_its_launch_patient_and_granted_categories(gateway: Gateway) -> None:
    token = gateway.token(
        "homecare-nurse",
        scope="patient/Patient.rs patient/Observation.rs?category=vital-signs",
        patient=str(CITIZEN_PATIENT_ID),
    )
    result = gateway.post(JOURNAL, token=token, variables={"id": CITIZEN}).json()
    observations = result["data"]["patient"]["observations"]
    vital_signs = gateway.fetch(
        "SELECT count(*) AS n FROM observation WHERE patient_id = $1 AND category = 'vital-signs'", CITIZEN_PATIENT_ID
    )[0]["n"]
    assert observations["totalCount"] == vital_signs > 0
    assert {e["node"]["category"] for e in observations["edges"]} == {"VITAL_SIGNS"}
    others = gateway.post("{ patients(first: 100) { totalCount } }", token=token).json()
    assert others["data"]["patients"]["totalCount"] == 1


def test_a_token_with_an_invalid_scope_is_refused(gateway: Gateway) -> None:
    response = gateway.post(
        "{ patients(first: 1) { totalCount } }", token=gateway.token("gp", scope="user/Observation.write")
    )
    assert response.status_code == 401
    assert "SMART v1" in response.json()["errors"][0]["message"]


def test_a_token_with_an_unknown_purpose_of_use_is_refused(gateway: Gateway) -> None:
    response = gateway.post(
        "{ patients(first: 1) { totalCount } }", token=gateway.token("gp", purpose_of_use="CURIOSITY")
    )
    assert response.status_code == 401
    assert "purpose of use" in response.json()["errors"][0]["message"]


def test_a_parent_can_launch_an_app_for_their_child_but_not_for_another_patient(gateway: Gateway) -> None:
    query = "{ patients(first: 5) { totalCount } }"
    child = gateway.post(query, token=gateway.token("parent"))
    assert child.status_code == 200, child.text
    stranger = gateway.post(query, token=gateway.token("parent", patient=str(CITIZEN_PATIENT_ID)))
    assert stranger.status_code == 403
    assert stranger.json()["errors"][0]["extensions"]["reason"] == "LAUNCH_PATIENT_NOT_OWN"
    assert (
        gateway.fetch("SELECT count(*) AS n FROM guardianship WHERE child_patient_id = $1", CHILD_PATIENT_ID)[0]["n"]
        == 1
    )
