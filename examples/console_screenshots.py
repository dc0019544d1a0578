"""Screenshots of the console's pages for the README (`make console-screenshots` writes docs/console/*.png).

Starts `akson serve --demo` on a free port (on DATABASE_URL when set, else the embedded PostgreSQL of a data
folder of its own), makes the state the pages show (a pending app, an emergency access to the citizen's
record), and walks a headless Chromium (Debian's package, through Playwright) through the pages as the
personas who use them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlencode

import httpx
from playwright.sync_api import Page, sync_playwright

from gateway import demo_issuer
from gateway.components import free_port
from gateway.config import load_settings
from gateway.personas import CITIZEN_PATIENT_ID, PERSONAS
from gateway.store import global_id_of

PROJECT = Path(__file__).resolve().parent.parent
PAGES = [
    ("sign-in", None, "/console/sign-in"),
    ("apps", "policy-admin", "/console/apps"),
    ("emergency", "compliance-officer", "/console/emergency"),
    ("my-log", "citizen", "/console/my-log"),
    ("access-log", "compliance-officer", "/console/log?from={week_ago}&patient={citizen}"),
    ("blocking", "policy-admin", "/console/blocking"),
    ("explain", "policy-admin", "/console/explain?person={nurse}&resource={citizen}&action=read"),
    # The demo issuer's sign-in page, where an app's authorization-code flow (and, outside demo mode, the
    # console's, at the real issuer) takes the person.
    ("issuer-sign-in", None, "/oauth/authorize?{authorize}"),
]
AUTHORIZE = {
    "response_type": "code",
    "client_id": "akson-demo-app",
    "redirect_uri": "http://127.0.0.1:8000/callback",
    "scope": "openid fhirUser user/*.crus",
    "state": "screenshot",
    "nonce": "screenshot",
    "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
    "code_challenge_method": "S256",
}


def _post(base: str, data_dir: Path, persona: str, query: str, variables: dict[str, object]) -> None:
    settings = load_settings({"AKSON_DATA_DIR": str(data_dir), "AKSON_PROJECT_DIR": str(PROJECT)})
    claims = demo_issuer.persona_claims(PERSONAS[persona], issuer=settings.issuer, audience=settings.audience)
    token = demo_issuer.sign(claims, demo_issuer.load_or_create_key(settings.demo_key_path))
    answer = httpx.post(
        f"{base}/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    answer.raise_for_status()


def _sign_in(page: Page, base: str, persona: str) -> None:
    page.goto(f"{base}/console/sign-in?lang=en")
    page.locator(f"#persona-{persona}").check()
    page.get_by_role("button", name="Sign in").click()


def main(out: Path) -> int:
    """Write one PNG per page into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    chromium = shutil.which("chromium")
    if chromium is None:
        print("needs Debian's chromium package (make test installs it)", file=sys.stderr)
        return 1
    citizen = global_id_of("Patient", CITIZEN_PATIENT_ID)
    nurse = global_id_of("Practitioner", PERSONAS["nurse-other-municipality"].entity_id)
    week_ago = (datetime.now(UTC).date() - timedelta(days=7)).isoformat()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="akson-screens-") as work:
        data_dir = Path(work)
        env = {**os.environ, "AKSON_DATA_DIR": str(data_dir), "AKSON_PROJECT_DIR": str(PROJECT)}
        if os.environ.get("DATABASE_URL"):
            env["DATABASE_URL"] = os.environ["DATABASE_URL"]
        server = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--demo", "--demo-patients", "300", "--port", str(port)],
            cwd=PROJECT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.5)
            _post(
                base,
                data_dir,
                "gp",
                "mutation($p: ID!) { requestEmergencyAccess(patientId: $p, reason: "
                '"Acute deterioration, GP office closed", lifeOrHealthAtRisk: false) { id } }',
                {"p": citizen},
            )
            _post(
                base,
                data_dir,
                "vendor-app",
                "mutation { registerApp(input: {clientId: \"visit-planner\", name: \"Visit planner\", "
                'vendorOrgNumber: "912345678", kind: USER_FACING, redirectUris: ["https://planner.example/cb"], '
                'scopes: ["openid", "user/Patient.rs", "user/Appointment.rs"]}) { clientId } }',
                {},
            )
            for refused in ("nurse-other-municipality", "health-secretary"):
                _post(base, data_dir, refused, "query($p: ID!) { patient(id: $p) { id } }", {"p": citizen})
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
                for name, signed_in, path in PAGES:
                    context = browser.new_context(viewport={"width": 1280, "height": 900})
                    page = context.new_page()
                    if signed_in is not None:
                        _sign_in(page, base, signed_in)
                    target = path.format(
                        week_ago=week_ago, citizen=quote(citizen), nurse=quote(nurse), authorize=urlencode(AUTHORIZE)
                    )
                    page.goto(f"{base}{target}{'&' if '?' in target else '?'}lang=en")
                    page.screenshot(path=str(out / f"{name}.png"), full_page=True)
                    print(f"wrote {out / f'{name}.png'}")
                    context.close()
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1] if len(sys.argv) > 1 else PROJECT / "docs" / "console")))
