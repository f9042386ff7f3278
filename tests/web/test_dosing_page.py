"""The precision-dosing page in a real Chromium: a clinician runs the vancomycin example.

Set ``MEDTWIN_SCREENSHOTS=<folder>`` to keep screenshots.
"""

from __future__ import annotations

import pytest

from tests.web.test_dashboard import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS, log_in, shot

pytestmark = pytest.mark.service

PATIENT = "p-dose-1"


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    """A page that records script errors and CSP violations (checked at the end)."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    ctx.set_default_timeout(TIMEOUT_MS)
    problems: list[str] = []
    pg = ctx.new_page()
    pg.on("pageerror", lambda exc: problems.append(f"{pg.url}: {exc}"))
    pg.on(
        "console",
        lambda m: (
            problems.append(f"{pg.url}: {m.text}")
            if m.type == "error" and "Content Security Policy" in m.text
            else None
        ),
    )
    yield pg
    ctx.close()
    assert not problems, "script errors or CSP violations:\n" + "\n".join(problems)


def test_clinician_runs_the_vancomycin_example(live_service, page):
    live_service.add_patient(PATIENT, device=False)
    password = live_service.add_clinician("dr.dose", patients=(PATIENT,))
    base = live_service.base_url
    path = f"/patients/{PATIENT}/dosing"
    log_in(page, base, "dr.dose", password, path=path)

    # the form is prefilled with the worked example
    page.locator('[data-testid="dosing-form"][data-state="ready"]').wait_for()
    assert page.get_by_test_id("patient-id").text_content() == PATIENT
    assert page.get_by_label("Weight (kg)").input_value() == "80"
    assert page.get_by_label("Creatinine clearance (mL/min)").input_value() == "60"
    assert page.locator('[data-testid="dose-row"]').count() == 4
    assert page.locator('[data-testid="level-row"]').count() == 2
    assert page.get_by_test_id("target-unit").text_content() == "(mg·h/L)"
    assert page.get_by_test_id("back-to-patient").get_attribute("href") == f"/patients/{PATIENT}"
    page.get_by_test_id("n-draws").select_option("500")
    shot(page, "dosing-form")

    page.get_by_test_id("dosing-run").click()
    chart = page.locator('[data-testid="dosing-chart"][data-state="ready"]')
    chart.wait_for(timeout=60_000)
    assert chart.get_attribute("data-candidates") == "3"
    assert page.locator('[data-testid="dosing-chart"] .scatterlayer .trace').count() >= 3 * 3 + 1

    rows = page.locator('[data-testid="dosing-row"]')
    assert rows.count() == 3
    best = page.locator('[data-testid="dosing-row"][data-recommended="true"]')
    assert best.count() == 1
    assert "Recommended" in best.get_by_test_id("recommended-badge").text_content()
    for i in range(3):
        pta = float(rows.nth(i).get_by_test_id("candidate-pta").get_attribute("data-value"))
        assert 0.0 <= pta <= 1.0
        assert "±" in rows.nth(i).get_by_test_id("candidate-pta").text_content()
        assert "±" in rows.nth(i).get_by_test_id("candidate-ptoxic").text_content()
    recommendation = page.get_by_test_id("dosing-recommendation").text_content()
    assert recommendation.startswith("Recommended: ") and "MC SE" in recommendation
    assert page.locator('[data-testid="parameter-row"][data-parameter="CL"]').count() == 1
    shot(page, "dosing-result")

    # the patient page links here
    page.goto(f"{base}/patients/{PATIENT}")
    link = page.get_by_test_id("dosing-link")
    page.wait_for_function(
        "document.querySelector('[data-testid=\"dosing-link\"]').getAttribute('href') !== '/ward'"
    )
    assert link.get_attribute("href") == path


def test_dosing_page_is_a_shell_with_the_strict_policy(live_service):
    import httpx

    r = httpx.get(f"{live_service.base_url}/patients/{PATIENT}/dosing")
    assert r.status_code == 200
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert "<script>" not in r.text and PATIENT not in r.text
    assert httpx.get(f"{live_service.base_url}/patients/bad%20id/dosing").status_code == 404
    js = httpx.get(f"{live_service.base_url}/static/dosing.js")
    assert js.status_code == 200 and "innerHTML" not in js.text
