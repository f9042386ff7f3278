"""The dashboard end to end: a real service, a real Chromium, a clinician's work.

Log in, open a patient from the ward, see the twin's forecast fan, run a what-if and see the
comparison, and watch an alert arrive live while readings fall toward hypoglycaemia (on the
patient page and on the ward, neither reloaded).  Set ``MEDTWIN_SCREENSHOTS=<folder>`` to keep
screenshots of each page.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

import httpx
import pytest

from medtwin.records import EventRecord

pytestmark = pytest.mark.service

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PATIENT = "p-web-1"
N_HISTORY = 18  # 90 min of 5-minute CGM: a twin starts after an hour
# a fall of about 3 mg/dL/min through 70 mg/dL, then low readings
FALLING = [124, 112, 100, 89, 79, 70, 62, 56, 51, 47, 44, 42, 40, 40, 40, 40]
TIMEOUT_MS = 30_000
TOKEN = "JSON.parse(sessionStorage.getItem('medtwin.session')).token"


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


class Ward:
    """The service with a clinician caring for one patient whose twin is running."""

    def __init__(self, harness) -> None:
        self.harness = harness
        self.base = harness.base_url
        self.device_token = harness.add_patient(PATIENT)
        self.password = harness.add_clinician("dr.web", patients=(PATIENT,))
        # history ends well in the past, so the falling readings pushed later are in the past too
        self.t0 = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=3)
        meal = self.t0 + dt.timedelta(minutes=10)
        harness.service.ingest_records(
            events=[
                EventRecord(PATIENT, "carbs", meal, 10.0, "g", source_id="web:carbs"),
                EventRecord(PATIENT, "bolus", meal, 1.0, "U", source_id="web:bolus"),
            ]
        )
        harness.push(PATIENT, self.t0, [130 + 3 * (i % 3) for i in range(N_HISTORY)])
        assert harness.service.host.wait_idle(120), "the twin did not start"
        self.seq = N_HISTORY

    def push_reading(self, value: float) -> None:
        """One CGM reading through the HTTP API, as a device sends it."""
        time = self.t0 + dt.timedelta(minutes=5 * self.seq)
        r = httpx.post(
            f"{self.base}/api/devices/cgm-{PATIENT}/readings",
            json={"first_seq": self.seq, "times": [time.isoformat()], "values": [value]},
            headers={"Authorization": f"Bearer {self.device_token}"},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        self.seq += 1


@pytest.fixture
def ward(live_service):
    return Ward(live_service)


@pytest.fixture
def context(browser):
    """A fresh browser context whose pages report script errors and CSP violations."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    problems: list[str] = []

    def watch(page):
        page.on("pageerror", lambda exc: problems.append(f"{page.url}: {exc}"))
        page.on(
            "console",
            lambda m: (
                problems.append(f"{page.url}: {m.text}")
                if m.type == "error" and "Content Security Policy" in m.text
                else None
            ),
        )

    ctx.on("page", watch)
    ctx.set_default_timeout(TIMEOUT_MS)
    yield ctx
    ctx.close()
    assert not problems, "script errors or CSP violations:\n" + "\n".join(problems)


def shot(page, name: str) -> None:
    folder = os.environ.get("MEDTWIN_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def log_in(page, base: str, username: str, password: str, path: str = "/ward") -> None:
    """Open ``path``, get sent to the login page, log in, and land back on ``path``."""
    page.goto(base + path)
    page.wait_for_url(re.compile(r"/\?next="))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(base + path)


def test_pages_are_shells_with_a_strict_policy(live_service):
    base = live_service.base_url
    for path in ("/", "/ward", f"/patients/{PATIENT}", "/audit"):
        r = httpx.get(base + path)
        assert r.status_code == 200
        policy = dict(
            d.strip().split(" ", 1) for d in r.headers["content-security-policy"].split(";")
        )
        assert policy["script-src"] == "'self'"
        assert policy["connect-src"] == "'self' ws: wss:"
        assert "<script>" not in r.text  # no inline script anywhere
        assert r.headers["cache-control"] == "no-store"
        assert PATIENT not in r.text  # no data in the HTML: it all comes from the API
    plotly_js = httpx.get(base + "/static/vendor/plotly.min.js")
    assert plotly_js.status_code == 200 and "plotly.js" in plotly_js.text[:200]
    app_js = httpx.get(base + "/static/app.js")
    assert app_js.status_code == 200 and app_js.headers["content-type"].startswith(
        "text/javascript"
    )
    revalidated = httpx.get(
        base + "/static/app.js", headers={"If-None-Match": app_js.headers["etag"]}
    )
    assert revalidated.status_code == 304
    assert httpx.get(base + "/static/..%2Fpages%2Fward.html").status_code == 404
    assert httpx.get(base + "/static/nope.js").status_code == 404


def test_login_logout_and_expired_session(live_service, context):
    base = live_service.base_url
    page = context.new_page()
    page.goto(base + "/ward")
    page.wait_for_url(re.compile(r"/\?next=%2Fward$"))
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    error = page.get_by_test_id("login-error")
    error.wait_for(state="visible")
    assert "Wrong username or password" in error.inner_text()
    shot(page, "login-error")

    page.get_by_label("Password").fill(live_service.admin_password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(base + "/ward")
    assert page.get_by_test_id("user").inner_text() == "admin (admin)"

    # admins see the audit log, with the hash chain verified
    page.get_by_role("link", name="Audit log").click()
    page.wait_for_url(base + "/audit")
    chain = page.locator('[data-testid="audit-chain-status"][data-ok]')
    chain.wait_for()
    assert chain.get_attribute("data-ok") == "true"
    assert "Chain intact" in chain.inner_text()
    page.locator('[data-testid="audit-row"]').first.wait_for()
    assert "login" in page.get_by_test_id("audit-table").inner_text()
    shot(page, "audit")

    # a token the API no longer accepts sends the user back to log in
    page.evaluate(
        """() => {
        const s = JSON.parse(sessionStorage.getItem("medtwin.session"));
        s.token = "not-a-token";
        sessionStorage.setItem("medtwin.session", JSON.stringify(s));
    }"""
    )
    page.goto(base + "/ward")
    page.wait_for_url(re.compile(r"/\?next=%2Fward$"))
    assert "log in again" in page.get_by_test_id("login-notice").inner_text()

    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(live_service.admin_password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(base + "/ward")
    page.get_by_test_id("logout").click()
    page.wait_for_url(base + "/")
    assert page.evaluate("sessionStorage.getItem('medtwin.session')") is None


def test_forecast_and_what_if(ward, context):
    page = context.new_page()
    log_in(page, ward.base, "dr.web", ward.password)

    row = page.locator(f'[data-testid="ward-row"][data-patient-id="{PATIENT}"]')
    row.wait_for()
    assert page.locator('[data-testid="ward-row"]').count() == 1
    tir = row.locator('[data-testid="tir"]')
    page.wait_for_function(
        f"el => el.dataset.n === '{N_HISTORY}'", arg=tir.element_handle(), timeout=TIMEOUT_MS
    )
    assert float(tir.get_attribute("data-value")) == 1.0  # every reading within 70-180 mg/dL
    assert "mg/dL" in row.locator('[data-testid="glucose"]').inner_text()
    shot(page, "ward")

    row.get_by_test_id("patient-link").click()
    page.wait_for_url(f"{ward.base}/patients/{PATIENT}")
    page.locator('[data-testid="forecast-chart"][data-state="ready"]').wait_for()
    fan = page.evaluate(
        """() => {
        const traces = document.querySelector('[data-testid="forecast-chart"]').data;
        const by = Object.fromEntries(traces.map((t) => [t.uid, t]));
        return {
            uids: traces.map((t) => t.uid),
            n: by.median.y.length,
            nCgm: by.cgm.y.length,
            ordered: ["50", "80", "95"].every((l) =>
                by[`band-${l}-lower`].y.every((v, i) => v <= by.median.y[i] + 1e-6
                    && by.median.y[i] <= by[`band-${l}-upper`].y[i] + 1e-6)),
            nested: by["band-95-lower"].y.every((v, i) => v <= by["band-50-lower"].y[i] + 1e-6),
            fills: document.querySelectorAll('[data-testid="forecast-chart"] path.js-fill').length,
        };
    }"""
    )
    for level in ("50", "80", "95"):
        assert f"band-{level}-lower" in fan["uids"] and f"band-{level}-upper" in fan["uids"]
    assert fan["n"] > 10 and fan["nCgm"] == N_HISTORY
    assert fan["ordered"] and fan["nested"]
    assert fan["fills"] >= 3  # the three bands are drawn, not just listed
    # insulin and carbohydrate markers from GET .../events
    events = httpx.get(
        f"{ward.base}/api/patients/{PATIENT}/events",
        headers={"Authorization": f"Bearer {page.evaluate(TOKEN)}"},
    )
    assert events.status_code == 200, events.text
    markers = page.evaluate(
        """() => Object.fromEntries(document.querySelector('[data-testid="forecast-chart"]')
            .data.filter((t) => t.uid.startsWith("events-")).map((t) => [t.uid, t.text]))"""
    )
    assert markers == {"events-bolus": ["1 U"], "events-carbs": ["10 g"]}
    gauge = page.locator('[data-testid="risk-hypoglycaemia"][data-value]')
    gauge.wait_for()
    assert 0.0 <= float(gauge.get_attribute("data-value")) <= 1.0
    assert page.get_by_test_id("current-glucose").inner_text().endswith("mg/dL")
    shot(page, "patient")

    # what-if: the default candidates (4 U bolus, 6 U bolus, 15 g carbs) plus "do nothing"
    page.get_by_test_id("whatif-add-scenario").click()
    page.get_by_test_id("scenario-name").nth(3).fill("do nothing")
    page.get_by_test_id("whatif-run").click()
    chart = page.locator('[data-testid="compare-chart"][data-state="ready"]')
    chart.wait_for(timeout=60_000)
    assert chart.get_attribute("data-scenarios") == "4"
    medians = page.evaluate(
        """() => document.querySelector('[data-testid="compare-chart"]').data
            .filter((t) => /^s\\d-median$/.test(t.uid)).map((t) => [t.name, t.y])"""
    )
    assert [name.split(" (")[0] for name, _ in medians] == [
        "4 U bolus",
        "6 U bolus",
        "15 g carbs",
        "do nothing",
    ]
    final = {name.split(" (")[0]: y[-1] for name, y in medians}
    assert final["6 U bolus"] < final["4 U bolus"] < final["do nothing"] < final["15 g carbs"]
    rows = page.locator('[data-testid="compare-row"]')
    assert rows.count() == 4
    for i in range(4):
        tir_text = rows.nth(i).get_by_test_id("outcome-tir").inner_text()
        m = re.fullmatch(r"(\d+)% \((\d+)–(\d+)\)", tir_text)
        assert m, tir_text
        lo, mid, hi = int(m[2]), int(m[1]), int(m[3])
        assert 0 <= lo <= mid <= hi <= 100
        assert "(" in rows.nth(i).get_by_test_id("outcome-nadir").inner_text()
    page.get_by_test_id("compare-chart").scroll_into_view_if_needed()
    shot(page, "what-if")


def test_alert_arrives_live(ward, context):
    patient = context.new_page()
    log_in(patient, ward.base, "dr.web", ward.password, f"/patients/{PATIENT}")
    ward_page = context.new_page()
    log_in(ward_page, ward.base, "dr.web", ward.password, "/ward")
    for page in (patient, ward_page):
        page.locator('[data-testid="live-status"][data-state="open"]').wait_for()
    patient.locator('[data-testid="forecast-chart"][data-state="ready"]').wait_for()
    assert patient.locator('[data-testid="alert-item"]').count() == 0

    alert = patient.locator('[data-testid="alert-item"][data-kind="hypoglycaemia"]')
    for value in FALLING:
        ward.push_reading(value)
        ward.harness.service.host.wait_idle(30)
        if alert.count():
            break
    alert.first.wait_for(timeout=10_000)
    assert "below 70 mg/dL" in alert.first.get_by_test_id("alert-message").inner_text()

    # the ward saw the same, without a reload: the alert, and the row's latest reading
    ward_alert = ward_page.locator(
        f'[data-testid="ward-alerts"] [data-testid="alert-item"][data-patient-id="{PATIENT}"]'
    )
    ward_alert.first.wait_for(timeout=10_000)
    row = ward_page.locator(f'[data-testid="ward-row"][data-patient-id="{PATIENT}"]')
    last = FALLING[ward.seq - N_HISTORY - 1]
    ward_page.wait_for_function(
        "([el, v]) => Number(el.dataset.glucose) === v", arg=[row.element_handle(), last]
    )
    assert row.get_by_test_id("alert-count").inner_text() == "1"
    tir = row.get_by_test_id("tir")
    n = ward.seq
    ward_page.wait_for_function(f"el => el.dataset.n === '{n}'", arg=tir.element_handle())
    assert float(tir.get_attribute("data-value")) < 1.0
    # the forecast follows the readings: it now starts from the last one
    last_time = (ward.t0 + dt.timedelta(minutes=5 * (ward.seq - 1))).isoformat()
    patient.wait_for_function(
        "([el, t]) => Math.abs(Date.parse(el.dataset.start) - Date.parse(t)) < 60000",
        arg=[patient.get_by_test_id("forecast-chart").element_handle(), last_time],
    )
    shot(patient, "patient-alert")
    shot(ward_page, "ward-alert")

    # acknowledging on the ward clears it from the active list
    ward_alert.first.get_by_test_id("alert-ack").click()
    ward_page.get_by_test_id("ward-no-alerts").wait_for(state="visible")
    assert row.get_by_test_id("alert-count").inner_text() == "0"
