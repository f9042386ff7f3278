"""The hospital page in a real Chromium: census bars, the forecast fan chart, a what-if.

Set ``MEDTWIN_SCREENSHOTS=<folder>`` to keep screenshots.
"""

from __future__ import annotations

import httpx
import pytest

from medtwin.hospital import load_hospital
from medtwin.hospital.census import Census
from medtwin.hospital.synthetic import synthetic_adt_stream
from medtwin.security import Role
from tests.conftest import synthetic_hospital
from tests.web.test_dashboard import log_in, shot
from tests.web.test_dosing_page import browser, page  # noqa: F401  (fixtures)

pytestmark = pytest.mark.service


def test_researcher_sees_census_forecast_and_runs_a_what_if(live_service, page):  # noqa: F811
    service = live_service.service
    service.open_hospital(load_hospital(synthetic_hospital()))
    stream = synthetic_adt_stream(days=2, seed=8)
    service.ingest_adt(stream.events, source="api")
    counts = Census.from_events(stream.events).counts()
    service.store.create_user("res.h", "password-res-h-123", Role.researcher)
    log_in(page, live_service.base_url, "res.h", "password-res-h-123",
           path="/hospital?replications=4")  # fmt: skip

    # the census: one row per unit, the counts of the feed
    page.locator('[data-testid="census-status"][data-state="open"]').wait_for()
    assert page.get_by_test_id("hospital-name").text_content() == "Synthetic stream hospital"
    rows = page.locator('[data-testid="census-unit"]')
    assert rows.count() == 6
    med = page.locator('[data-testid="census-unit"][data-unit="MED"]')
    assert med.get_attribute("data-occupied") == str(counts["MED"])
    assert med.get_attribute("data-capacity") == "300"
    assert page.get_by_role("link", name="Hospital").get_attribute("aria-current") == "page"

    # the forecast fan chart: median, two bands, the beds
    chart = page.locator('[data-testid="forecast-chart"][data-state="ready"]')
    chart.wait_for(timeout=90_000)
    assert chart.get_attribute("data-unit") == "MED" and chart.get_attribute("data-hours") == "72"
    assert page.locator('[data-testid="forecast-chart"] .scatterlayer .trace').count() == 6
    assert page.locator('[data-testid="forecast-row"]').count() == 5
    page.get_by_test_id("forecast-horizon").select_option("24")
    page.locator('[data-testid="forecast-chart"][data-hours="24"]').wait_for()
    assert "In 24 h" in page.get_by_test_id("forecast-at-header").text_content()
    page.get_by_test_id("forecast-unit").select_option("ICU")
    page.locator('[data-testid="forecast-chart"][data-unit="ICU"]').wait_for()
    shot(page, "hospital")

    # a what-if: 20 more beds on MED, two replications of one day
    page.get_by_test_id("scenario-unit").select_option("MED")
    page.get_by_test_id("scenario-beds").fill("20")
    page.get_by_test_id("scenario-days").fill("1")
    page.get_by_test_id("scenario-replications").fill("2")
    page.get_by_test_id("scenario-run").click()
    page.get_by_test_id("scenario-result").wait_for(timeout=90_000)
    occupancy = page.locator('[data-testid="scenario-row"][data-kpi="occupancy:MED"]')
    assert occupancy.count() == 1 and "Occupancy of MED" in occupancy.text_content()
    assert "+20 beds on MED" in page.get_by_test_id("scenario-status").text_content()
    shot(page, "hospital-what-if")
    # a bad input is said in the page, not sent
    page.get_by_test_id("scenario-los").fill("7")
    page.get_by_test_id("scenario-run").click()
    assert "between 0.5 and 2" in page.get_by_test_id("scenario-status").text_content()
    # nothing on the page identifies a patient
    assert stream.events[0].patient_id not in page.content()


def test_hospital_page_is_a_shell_with_the_strict_policy(live_service):
    r = httpx.get(f"{live_service.base_url}/hospital")
    assert r.status_code == 200
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert "<script>" not in r.text
    js = httpx.get(f"{live_service.base_url}/static/hospital.js")
    assert js.status_code == 200 and "innerHTML" not in js.text
