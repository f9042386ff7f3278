// The hospital twin: the live census per unit, the forecast fan chart, what-if scenarios.
// Aggregated counts only (GET /api/hospital/census without patients): nothing identifies a
// patient, so researchers may use the page too.

import {
  ApiError, PLOT_CONFIG, api, byTestId, el, percent, plotly, query, renderHeader, showError, stamp,
  start,
} from "/static/app.js";

const CENSUS_EVERY_MS = 15_000;
// more (or fewer) simulated futures: /hospital?replications=200
const asked = Number(new URLSearchParams(location.search).get("replications"));
const FORECAST = {
  horizon_hours: 72,
  replications: Number.isInteger(asked) && asked >= 2 && asked <= 200 ? asked : 40,
};
const BLUE = "#0b5cad";

const KPI_NAMES = {
  occupancy: "Bed occupancy, all units",
  ed_los_h: "Time in the ED, mean (h)",
  door_to_provider_min: "Arrival to first clinician, mean (min)",
  boarding: "Patients boarding in the ED, mean",
  boarding_h: "Decision to admit to a bed, mean (h)",
  lwbs_rate: "Left without being seen",
  admissions_per_day: "Admissions per day",
  discharges_per_day: "Discharges per day",
  elective_cancellation_rate: "Electives cancelled for want of a bed",
};
const SHARES = new Set(["occupancy", "lwbs_rate", "elective_cancellation_rate"]);

let census = null;
let forecast = null;

// ---- the census ----------------------------------------------------------------------------

function bar(u) {
  const share = u.occupancy;
  const level = share === null ? "none" : share >= 0.95 ? "high" : share >= 0.85 ? "moderate" : "low";
  const fill = el("div", { class: `bar-fill ${level}` });
  fill.style.width = `${Math.min(100, 100 * (share || 0)).toFixed(1)}%`;
  return el(
    "div",
    { class: "bar", role: "img", "aria-label": share === null ? "no capacity" : `${percent(share)} occupied` },
    fill,
    el("span", { class: "bar-text" }, share === null ? "—" : percent(share)),
  );
}

function showCensus(c) {
  census = c;
  const rows = byTestId("census-rows");
  rows.replaceChildren(...c.units.map((u) => el(
    "tr",
    { dataset: { testid: "census-unit", unit: u.unit, occupied: String(u.occupied),
                 capacity: String(u.capacity ?? "") } },
    el("th", { scope: "row" }, u.kind === "ed" ? `${u.unit} (emergency department)` : u.unit),
    el("td", { class: "num" }, String(u.occupied)),
    el("td", { class: "num" }, u.capacity === null ? "—" : String(u.capacity)),
    el("td", { class: "occupancy-col" }, bar(u)),
    el("td", { class: "num" }, u.boarding === null ? "" : String(u.boarding)),
  )));
  const unknown = Object.entries(c.unknown_units);
  byTestId("census-summary").textContent =
    `${c.inpatients} inpatients in ${c.beds} beds (${percent(c.occupancy)}); ` +
    `as of ${c.as_of ? stamp(c.as_of) : "— (no ADT events yet)"}; ` +
    `${c.events_applied} events applied, ${c.events_duplicate} duplicates ignored.` +
    (unknown.length ? ` Units the hospital spec lacks: ${unknown.map(([u, n]) => `${u} ${n}`).join(", ")}.` : "");
  const issues = Object.entries(c.issues);
  byTestId("census-issues").textContent = issues.length
    ? "Data issues to look at: " + issues.map(([k, n]) => `${n} ${k}`).join(", ") + "."
    : "No data issues.";
  const status = byTestId("census-status");
  status.dataset.state = "open";
  status.textContent = "live";
  if (forecast) markStale();
}

async function pollCensus() {
  try {
    showCensus(await api("/api/hospital/census"));
  } catch (exc) {
    const status = byTestId("census-status");
    status.dataset.state = "closed";
    status.textContent = "not live";
    if (!(exc instanceof ApiError) || exc.status !== 0) throw exc;
  }
}

// ---- the forecast --------------------------------------------------------------------------

function horizon() {
  return Number(byTestId("forecast-horizon").value);
}

function markStale() {
  const note = byTestId("forecast-status");
  const changed = census && forecast && census.version !== forecast.census_version;
  note.textContent = `From the census of ${stamp(forecast.census_at)}; ${forecast.replications} ` +
    `simulated futures, computed ${stamp(forecast.computed_at)}` +
    (changed ? " — the census has changed since." : ".");
}

function drawForecast() {
  if (!forecast) return;
  const Plotly = plotly();
  const name = byTestId("forecast-unit").value;
  const h = Math.min(horizon(), forecast.horizon_hours);
  const n = h + 1;
  const x = forecast.times.slice(0, n);
  const traces = [];
  let beds = null;
  let band;
  if (name === "__ed__") {
    band = forecast.ed.ed;
  } else {
    const u = forecast.units.find((v) => v.unit === name) || forecast.units[0];
    band = u.occupied;
    beds = u.beds;
  }
  const cut = (a) => a.slice(0, n);
  traces.push({ x, y: cut(band.lower_90), type: "scatter", mode: "lines", line: { width: 0 },
                showlegend: false, hoverinfo: "skip" });
  traces.push({ x, y: cut(band.upper_90), type: "scatter", mode: "lines", line: { width: 0 },
                fill: "tonexty", fillcolor: "rgba(11, 92, 173, 0.15)", name: "90% band" });
  traces.push({ x, y: cut(band.lower_50), type: "scatter", mode: "lines", line: { width: 0 },
                showlegend: false, hoverinfo: "skip" });
  traces.push({ x, y: cut(band.upper_50), type: "scatter", mode: "lines", line: { width: 0 },
                fill: "tonexty", fillcolor: "rgba(11, 92, 173, 0.32)", name: "50% band" });
  traces.push({ x, y: cut(band.median), type: "scatter", mode: "lines", name: "median",
                line: { color: BLUE, width: 2.5 },
                hovertemplate: "%{y:.0f} patients<extra>median</extra>" });
  const shapes = [];
  if (beds !== null) {
    traces.push({ x: [x[0], x[x.length - 1]], y: [beds, beds], type: "scatter", mode: "lines",
                  name: `${beds} beds`, line: { color: "#1b1f24", width: 1.5, dash: "dash" } });
  }
  const node = byTestId("forecast-chart");
  Plotly.react(node, traces, {
    height: 400, margin: { l: 60, r: 15, t: 20, b: 50 }, hovermode: "x unified",
    yaxis: { title: { text: name === "__ed__" ? "Patients in the ED" : "Patients in beds" }, rangemode: "tozero" },
    legend: { orientation: "h", y: -0.18 }, shapes,
    paper_bgcolor: "#ffffff", plot_bgcolor: "#ffffff",
  }, PLOT_CONFIG);
  node.dataset.state = "ready";
  node.dataset.unit = name;
  node.dataset.hours = String(h);
  showForecastTable(h);
}

function showForecastTable(h) {
  byTestId("forecast-at-header").textContent = `In ${h} h (90% interval)`;
  const now = new Map((census ? census.units : []).map((u) => [u.unit, u.occupied]));
  const tbody = byTestId("forecast-table").querySelector("tbody");
  tbody.replaceChildren(...forecast.units.map((u) => el(
    "tr",
    { dataset: { testid: "forecast-row", unit: u.unit } },
    el("th", { scope: "row" }, u.unit),
    el("td", { class: "num" }, String(u.beds)),
    el("td", { class: "num" }, String(u.occupied.median[0] ?? now.get(u.unit) ?? "—")),
    el("td", { class: "num" }, `${Math.round(u.occupied.median[h])} `,
       el("span", { class: "outcome-range" },
          `(${Math.round(u.occupied.lower_90[h])}–${Math.round(u.occupied.upper_90[h])})`)),
    el("td", { class: "num", dataset: { testid: "forecast-pfull", value: String(u.p_full[h]) } },
       percent(u.p_full[h])),
  )));
}

async function loadForecast(fresh = false) {
  const status = byTestId("forecast-status");
  const button = byTestId("forecast-refresh");
  button.disabled = true;
  status.textContent = "Simulating the next 72 hours from the census…";
  try {
    forecast = await api("/api/hospital/forecast" + query({ ...FORECAST, max_age_s: fresh ? 0 : undefined }));
    const select = byTestId("forecast-unit");
    if (!select.options.length) {
      const options = forecast.units.map((u) => el("option", { value: u.unit }, u.unit));
      if (forecast.ed.ed) options.push(el("option", { value: "__ed__" }, "ED (patients in the department)"));
      select.replaceChildren(...options);
      const biggest = forecast.units.reduce((a, b) => (b.beds > a.beds ? b : a), forecast.units[0]);
      if (biggest) select.value = biggest.unit;
    }
    markStale();
    drawForecast();
  } catch (exc) {
    status.textContent = "";
    showError("The forecast failed: " + exc.message);
  } finally {
    button.disabled = false;
  }
}

// ---- what if -------------------------------------------------------------------------------

function readScenario() {
  const number = (id, lo, hi, what) => {
    const v = Number(byTestId(id).value);
    if (byTestId(id).value.trim() === "" || !Number.isFinite(v) || v < lo || v > hi) {
      throw new Error(`${what} must be between ${lo} and ${hi}.`);
    }
    return v;
  };
  const beds = Math.round(number("scenario-beds", -200, 500, "Extra beds"));
  const surge = number("scenario-surge", -50, 200, "The surge");
  const los = number("scenario-los", 0.5, 2, "The length-of-stay factor");
  const days = number("scenario-days", 1, 14, "Days ahead");
  const replications = Math.round(number("scenario-replications", 2, 20, "Replications"));
  const unit = byTestId("scenario-unit").value;
  const scenario = {};
  const parts = [];
  if (beds !== 0) {
    scenario.extra_beds = { [unit]: beds };
    parts.push(`${beds > 0 ? "+" : ""}${beds} beds on ${unit}`);
  }
  if (surge !== 0) {
    scenario.surge = { multiplier: 1 + surge / 100 };
    parts.push(`ED arrivals ${surge > 0 ? "+" : ""}${surge}%`);
  }
  if (los !== 1) {
    scenario.los_multiplier = los;
    parts.push(`length of stay ×${los}`);
  }
  if (!parts.length) throw new Error("Change something: beds, the surge or the length of stay.");
  return { name: parts.join(", "), body: { scenarios: { "what-if": scenario }, replications, days, from_census: true } };
}

function kpiName(k) {
  if (KPI_NAMES[k]) return KPI_NAMES[k];
  if (k.startsWith("occupancy:")) return `Occupancy of ${k.slice(10)}`;
  if (k.startsWith("bed_queue:")) return `Waiting for a bed on ${k.slice(10)}, mean`;
  const within = /^within_(.+)h$/.exec(k);
  if (within) return `Left the ED within ${within[1]} h`;
  return k;
}

function value(k, v, signed = false) {
  if (v === null || v === undefined) return "—";
  const sign = signed && v > 0 ? "+" : "";
  if (SHARES.has(k) || k.startsWith("occupancy:") || k.startsWith("within_")) {
    return `${sign}${(100 * v).toFixed(1)}%`;
  }
  return sign + (Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2));
}

function showScenario(result, name) {
  const byKpi = new Map();
  for (const r of result.rows) {
    if (!byKpi.has(r.kpi)) byKpi.set(r.kpi, {});
    byKpi.get(r.kpi)[r.scenario === "baseline" ? "base" : "what"] = r;
  }
  const tbody = byTestId("scenario-table").querySelector("tbody");
  tbody.replaceChildren(...[...byKpi.entries()].filter(([, r]) => r.base && r.what).map(([k, r]) => el(
    "tr",
    { dataset: { testid: "scenario-row", kpi: k, significant: String(Boolean(r.what.significant)) } },
    el("th", { scope: "row" }, kpiName(k)),
    el("td", { class: "num" }, value(k, r.base.mean)),
    el("td", { class: "num" }, value(k, r.what.mean)),
    el("td", { class: "num" }, value(k, r.what.difference, true), " ",
       el("span", { class: "outcome-range" },
          `[${value(k, r.what.diff_low, true)}, ${value(k, r.what.diff_high, true)}]`),
       r.what.significant ? " ★" : ""),
  )));
  byTestId("scenario-result").hidden = false;
  byTestId("scenario-status").textContent =
    `${name}: ${result.replications} paired replications of ${result.days} day${result.days === 1 ? "" : "s"} from the census ` +
    `(${result.elapsed_s} s).`;
}

async function runScenario(event) {
  event.preventDefault();
  const status = byTestId("scenario-status");
  let read;
  try {
    read = readScenario();
  } catch (exc) {
    status.className = "error";
    status.textContent = exc.message;
    return;
  }
  const button = byTestId("scenario-run");
  button.disabled = true;
  status.className = "muted";
  status.textContent = "Simulating the baseline and the what-if…";
  try {
    const result = await api("/api/hospital/scenarios", { method: "POST", json: read.body });
    status.className = "muted";
    showScenario(result, read.name);
  } catch (exc) {
    status.className = "error";
    status.textContent = "The comparison failed: " + exc.message;
  } finally {
    button.disabled = false;
  }
}

// ---- start ---------------------------------------------------------------------------------

start(async () => {
  renderHeader("hospital");
  let spec;
  try {
    spec = await api("/api/hospital/spec");
  } catch (exc) {
    if (exc instanceof ApiError && exc.status === 404) {
      byTestId("hospital-name").textContent = "none";
      throw new Error("This service hosts no hospital twin (start it with --hospital).");
    }
    throw exc;
  }
  byTestId("hospital-name").textContent = spec.name;
  document.title = `${spec.name} · medtwin`;
  const unitSelect = byTestId("scenario-unit");
  unitSelect.replaceChildren(...spec.units.map((u) => el("option", { value: u.name }, `${u.name} (${u.beds} beds)`)));
  byTestId("scenario-form").addEventListener("submit", runScenario);
  byTestId("forecast-horizon").addEventListener("change", drawForecast);
  byTestId("forecast-unit").addEventListener("change", drawForecast);
  byTestId("forecast-refresh").addEventListener("click", () => loadForecast(true));
  byTestId("scenario-form").dataset.state = "ready";
  await pollCensus();
  setInterval(() => pollCensus().catch((exc) => showError(exc.message)), CENSUS_EVERY_MS);
  await loadForecast();
});
