// The ward: every patient the user may see, live over /ws/ward.

import {
  CGM_CODE, acknowledge, alertItem, api, byTestId, debounce, el, glucoseNode, live, percent, query,
  renderHeader, riskBadge, showError, start, timeInRange, timeNode, trendNode,
} from "/static/app.js";

const DAY_MS = 24 * 3600 * 1000;
const REFETCH_MS = 60 * 1000; // readings for time in range: at most one request a minute a patient
const MAX_ALERTS = 50;

const patients = new Map(); // id -> {id, name, latest, readings, pending: [[t_ms, mg/dL]], fetchedAt, fetching, row}
const alerts = new Map(); // alert id -> alert (active ones only)

const rows = byTestId("ward-rows");
const alertList = byTestId("ward-alerts");

function lastTime(list) {
  return list.length ? list[list.length - 1][0] : NaN;
}

function newestTime(p) {
  const times = [p.latest && p.latest.time ? Date.parse(p.latest.time) : NaN, lastTime(p.readings),
                 lastTime(p.pending)].filter(Number.isFinite);
  return times.length ? Math.max(...times) : Date.now();
}

/** Drop readings older than 24 h before the newest (the demo's clock may differ from the wall's). */
function trim(p) {
  const from = newestTime(p) - DAY_MS;
  p.readings = p.readings.filter(([t]) => t >= from);
  p.pending = p.pending.filter(([t]) => t >= from);
}

/**
 * The stored readings since the last one fetched (the last 24 h the first time).  Between
 * fetches, each update's reading is kept as pending, so time in range follows every update;
 * a fetch replaces the pending readings with what the store holds (updates coalesce readings).
 */
async function fetchReadings(p) {
  if (p.fetching) return;
  p.fetching = true;
  p.fetchedAt = Date.now();
  try {
    const last = lastTime(p.readings);
    const start = Number.isFinite(last) ? new Date(last + 1) : new Date(newestTime(p) - DAY_MS);
    const rowsIn = await api(
      `/api/patients/${encodeURIComponent(p.id)}/observations` +
        query({ code: CGM_CODE, start: start.toISOString() }),
    );
    for (const o of rowsIn) {
      const t = Date.parse(o.time);
      if (!(t <= lastTime(p.readings))) p.readings.push([t, o.value]);
    }
    const confirmed = lastTime(p.readings);
    p.pending = p.pending.filter(([t]) => !(t <= confirmed));
    trim(p);
    render(p);
  } catch (exc) {
    if (exc.status !== 403 && exc.status !== 404) showError("Could not read CGM of " + p.id + ": " + exc.message);
  } finally {
    p.fetching = false;
  }
}

/** An update's reading, kept until the next fetch confirms it. */
function addPending(p, update) {
  const t = Date.parse(update.time);
  const v = update.glucose_mg_dl;
  if (!Number.isFinite(t) || v === null || v === undefined) return;
  if (t <= lastTime(p.readings) || t <= lastTime(p.pending)) return;
  p.pending.push([t, v]);
  trim(p);
}

function activeAlertsOf(id) {
  let n = 0;
  for (const a of alerts.values()) if (a.patient_id === id) n += 1;
  return n;
}

function render(p) {
  const latest = p.latest || {};
  const risks = latest.risks || {};
  const range = timeInRange([...p.readings, ...p.pending].map(([, v]) => v));
  const nAlerts = activeAlertsOf(p.id);
  const href = "/patients/" + encodeURIComponent(p.id);
  p.row.replaceChildren(
    el("td", { class: "patient" }, el("a", { href, dataset: { testid: "patient-link" } }, p.id),
       p.name ? el("div", { class: "small-print" }, p.name) : null),
    el("td", { class: "num", dataset: { testid: "glucose" } }, glucoseNode(latest.glucose_mg_dl)),
    el("td", { dataset: { testid: "trend" } }, trendNode(latest.trend_mg_dl_per_min)),
    el(
      "td",
      { class: "num", dataset: { testid: "tir", value: range.tir === null ? "" : String(range.tir), n: String(range.n) },
        title: range.n ? `${range.n} readings; ${percent(range.tbr)} below 70 mg/dL` : "no readings in the last 24 h" },
      percent(range.tir),
      range.n ? el("div", { class: "small-print" }, `${percent(range.tbr)} below 70`) : null,
    ),
    el("td", {}, riskBadge("hypoglycaemia", risks.hypoglycaemia)),
    el("td", {}, riskBadge("hyperglycaemia", risks.hyperglycaemia)),
    el("td", { class: "num", dataset: { testid: "alert-count" } },
       nAlerts ? el("span", { class: "alert-count" }, String(nAlerts)) : el("span", { class: "muted" }, "0")),
    el("td", { dataset: { testid: "updated" } }, timeNode(latest.time)),
  );
  p.row.dataset.glucose = latest.glucose_mg_dl ?? "";
  p.row.dataset.updated = latest.time || "";
}

function upsertPatient(record) {
  let p = patients.get(record.id);
  if (!p) {
    p = { id: record.id, readings: [], pending: [], fetchedAt: 0, fetching: false,
          row: el("tr", { dataset: { testid: "ward-row", patientId: record.id } }) };
    patients.set(record.id, p);
    const after = [...patients.keys()].sort().find((id) => id > record.id);
    rows.insertBefore(p.row, after ? patients.get(after).row : null);
  }
  p.name = record.name;
  const older = p.latest && record.latest && Date.parse(record.latest.time) < Date.parse(p.latest.time);
  if (record.latest && !older) p.latest = record.latest;
  render(p);
  return p;
}

async function loadPatients() {
  const list = await api("/api/patients");
  for (const record of list) upsertPatient(record);
  byTestId("ward-empty").hidden = patients.size > 0;
  // time in range for each patient, a few requests at a time (the ward may be large)
  const queue = [...patients.values()].filter((p) => !p.fetchedAt);
  const worker = async () => {
    while (queue.length) await fetchReadings(queue.shift());
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
}

const reloadPatients = debounce(() => loadPatients().catch((exc) => showError(exc.message)), 1000);

function renderAlerts() {
  const sorted = [...alerts.values()].sort((a, b) => Date.parse(b.time) - Date.parse(a.time));
  alertList.replaceChildren(
    ...sorted.slice(0, MAX_ALERTS).map((a) => alertItem(a, { showPatient: true, fresh: a.fresh, onAck })),
  );
  for (const a of sorted) a.fresh = false;
  byTestId("ward-no-alerts").hidden = alerts.size > 0;
}

async function onAck(alert, button) {
  const done = await acknowledge(alert, button);
  if (!done) return;
  alerts.delete(alert.id);
  renderAlerts();
  const p = patients.get(alert.patient_id);
  if (p) render(p);
}

async function loadAlerts() {
  const list = await api("/api/alerts" + query({ active: true }));
  const fresh = new Set([...alerts.values()].filter((a) => a.fresh).map((a) => a.id));
  alerts.clear();
  for (const a of list) alerts.set(a.id, { ...a, fresh: fresh.has(a.id) });
  renderAlerts();
  for (const p of patients.values()) render(p);
}

function onMessage(message) {
  if (message.type === "update") {
    const p = patients.get(message.patient_id);
    if (!p) {
      reloadPatients(); // a patient the ward has not seen yet
      return;
    }
    p.latest = message;
    addPending(p, message);
    render(p);
    if (Date.now() - p.fetchedAt > REFETCH_MS) fetchReadings(p);
  } else if (message.type === "alert") {
    if (message.acknowledged_by) return;
    alerts.set(message.id, { ...message, fresh: true });
    renderAlerts();
    const p = patients.get(message.patient_id);
    if (p) render(p);
  }
}

start(async () => {
  renderHeader("ward");
  // connect first, so nothing that happens while the lists load is missed
  live("/ws/ward", onMessage, byTestId("live-status"), () => {
    loadPatients().catch((exc) => showError(exc.message));
    loadAlerts().catch((exc) => showError(exc.message));
  });
  await Promise.all([loadPatients(), loadAlerts()]);
});
