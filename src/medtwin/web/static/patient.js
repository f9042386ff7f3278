// One patient: CGM with the twin's forecast fan and events, risk gauges, live alerts, and the
// what-if comparison of candidate actions.

import {
  ApiError, CGM_CODE, GLUCOSE_UNIT, PLOT_CONFIG, RANGE_HIGH, RANGE_LOW, acknowledge, alertItem, api,
  byTestId, el, glucoseNode, live, percent, plotly, query, renderHeader, riskLevel, showError, start,
  stamp, timeNode, trendNode,
} from "/static/app.js";

const patientId = decodeURIComponent(location.pathname.split("/")[2] || "");
const base = `/api/patients/${encodeURIComponent(patientId)}`;

const HOUR_MS = 3600 * 1000;
const DAY_MS = 24 * HOUR_MS;
const FORECAST_MIN_INTERVAL_MS = 5000;

const state = {
  readings: [], // [[t_ms, mg/dL]], oldest first
  events: [], // [{t, kind, value, unit}]
  eventsAvailable: true,
  forecast: null,
  latest: null,
  alerts: new Map(),
};

const chart = byTestId("forecast-chart");
const forecastStatus = byTestId("forecast-status");
const historySelect = byTestId("history-hours");
const horizonSelect = byTestId("forecast-horizon");

// ---- times: plotly's date axes have no time zone, so they get local wall-clock strings -----

function local(ms) {
  const d = new Date(ms);
  const p = (n, w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ` +
    `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

function lastReadingTime() {
  return state.readings.length ? state.readings[state.readings.length - 1][0] : null;
}

function newestTime() {
  const t = state.latest && state.latest.time ? Date.parse(state.latest.time) : NaN;
  const last = lastReadingTime();
  if (Number.isFinite(t) && last !== null) return Math.max(t, last);
  return Number.isFinite(t) ? t : last !== null ? last : Date.now();
}

// ---- patient and current state -------------------------------------------------------------

async function loadPatient() {
  const p = await api(base);
  document.title = `Patient ${p.id} · medtwin`;
  byTestId("patient-id").textContent = p.id;
  const details = [
    ["Name", p.name], ["Identifier", p.identifier], ["Birth date", p.birth_date], ["Sex", p.sex],
  ].filter(([, v]) => v);
  byTestId("patient-details").replaceChildren(
    ...details.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]),
  );
  if (p.latest) showLatest(p.latest);
}

function showLatest(update) {
  if (state.latest && update.time && Date.parse(update.time) < Date.parse(state.latest.time)) return;
  state.latest = update;
  byTestId("current-glucose").replaceChildren(glucoseNode(update.glucose_mg_dl));
  byTestId("current-trend").replaceChildren(trendNode(update.trend_mg_dl_per_min));
  byTestId("current-time").replaceChildren(timeNode(update.time));
  if (update.risks) for (const [kind, p] of Object.entries(update.risks)) drawGauge(kind, p);
}

// ---- readings, events, forecast ------------------------------------------------------------

let readingsBusy = null;

/** New CGM readings since the last one shown (the last 24 h the first time). */
function loadReadings() {
  if (readingsBusy) return readingsBusy;
  readingsBusy = (async () => {
    const last = lastReadingTime();
    const since = last !== null ? new Date(last + 1) : new Date(newestTime() - DAY_MS);
    const rows = await api(`${base}/observations` + query({ code: CGM_CODE, start: since.toISOString() }));
    for (const o of rows) {
      const t = Date.parse(o.time);
      const end = lastReadingTime();
      if (end === null || t > end) state.readings.push([t, o.value]);
    }
  })().finally(() => {
    readingsBusy = null;
  });
  return readingsBusy;
}

/** Logged insulin and carbohydrate of the last 24 h (if the API offers them). */
async function loadEvents() {
  if (!state.eventsAvailable) return;
  try {
    const rows = await api(`${base}/events` + query({ start: new Date(newestTime() - DAY_MS).toISOString() }));
    state.events = rows.map((e) => ({ t: Date.parse(e.time), kind: e.kind, value: e.value, unit: e.unit }));
  } catch (exc) {
    if (exc instanceof ApiError && (exc.status === 404 || exc.status === 405)) {
      state.eventsAvailable = false; // this service has no events read endpoint
      return;
    }
    throw exc;
  }
}

let forecastBusy = false;
let forecastAgain = false;
let forecastAt = 0;

async function loadForecast() {
  if (forecastBusy) {
    forecastAgain = true;
    return;
  }
  forecastBusy = true;
  try {
    do {
      forecastAgain = false;
      const wait = forecastAt + FORECAST_MIN_INTERVAL_MS - Date.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      forecastAt = Date.now();
      try {
        state.forecast = await api(`${base}/forecast` + query({ horizon_min: horizonSelect.value }));
        forecastStatus.textContent =
          `Forecast issued ${stamp(state.forecast.issued)} by the ${state.forecast.model} twin.`;
      } catch (exc) {
        if (!(exc instanceof ApiError) || (exc.status !== 404 && exc.status !== 409)) throw exc;
        state.forecast = null;
        forecastStatus.textContent = "No forecast yet: " + exc.message;
      }
      draw();
    } while (forecastAgain);
  } finally {
    forecastBusy = false;
  }
}

// ---- the chart -----------------------------------------------------------------------------

const FAN = [
  ["95", "rgba(11, 92, 173, 0.12)"],
  ["80", "rgba(11, 92, 173, 0.20)"],
  ["50", "rgba(11, 92, 173, 0.32)"],
];

function rangeShapes(x0, x1) {
  return [
    { type: "rect", xref: "x", yref: "y", x0, x1, y0: RANGE_LOW, y1: RANGE_HIGH, layer: "below",
      fillcolor: "rgba(13, 120, 60, 0.08)", line: { width: 0 } },
    { type: "line", xref: "x", yref: "y", x0, x1, y0: RANGE_LOW, y1: RANGE_LOW, layer: "below",
      line: { color: "#9b1020", width: 1, dash: "dot" } },
  ];
}

function yRange(values) {
  const finite = values.filter(Number.isFinite);
  const hi = Math.max(300, ...finite.map((v) => v + 20));
  const lo = Math.min(40, ...finite.map((v) => v - 10));
  return [Math.max(0, lo), Math.min(hi, 600)];
}

function draw() {
  const Plotly = plotly();
  const hours = Number(historySelect.value);
  const now = newestTime();
  const fc = state.forecast;
  const traces = [];
  const yValues = [];
  let xEnd = now + 15 * 60 * 1000;
  if (fc) {
    const x = fc.times.map((t) => local(Date.parse(t)));
    xEnd = Math.max(xEnd, Date.parse(fc.times[fc.times.length - 1]));
    for (const [level, color] of FAN) {
      const band = fc.bands[level];
      if (!band) continue;
      traces.push({
        uid: `band-${level}-lower`, x, y: band.lower, type: "scatter", mode: "lines",
        line: { width: 0 }, showlegend: false, legendgroup: `band-${level}`, hoverinfo: "skip",
      });
      traces.push({
        uid: `band-${level}-upper`, x, y: band.upper, type: "scatter", mode: "lines",
        line: { width: 0 }, fill: "tonexty", fillcolor: color, name: `${level}% band`,
        legendgroup: `band-${level}`, hoverinfo: "skip",
      });
      yValues.push(...band.upper, ...band.lower);
    }
    traces.push({
      uid: "median", x, y: fc.median, type: "scatter", mode: "lines", name: "Forecast median",
      line: { color: "#0b5cad", width: 2, dash: "dash" },
      hovertemplate: "%{y:.0f} mg/dL<extra>forecast median</extra>",
    });
    yValues.push(...fc.median);
  }
  const from = now - hours * HOUR_MS;
  const shown = state.readings.filter(([t]) => t >= from);
  traces.push({
    uid: "cgm", x: shown.map(([t]) => local(t)), y: shown.map(([, v]) => v), type: "scatter",
    mode: "lines+markers", name: "CGM", line: { color: "#1b1f24", width: 1.5 },
    marker: { size: 4, color: "#1b1f24" }, hovertemplate: "%{y:.0f} mg/dL<extra>CGM</extra>",
  });
  yValues.push(...shown.map(([, v]) => v));
  const [y0, y1] = yRange(yValues);
  const events = state.events.filter((e) => e.t >= from);
  const strips = {
    bolus: { y: y0 + 0.06 * (y1 - y0), symbol: "triangle-down", color: "#6a3d9a", name: "Insulin bolus" },
    basal: { y: y0 + 0.06 * (y1 - y0), symbol: "square", color: "#8e6bb5", name: "Basal rate" },
    carbs: { y: y1 - 0.06 * (y1 - y0), symbol: "circle", color: "#b35900", name: "Carbohydrate" },
  };
  for (const [kind, strip] of Object.entries(strips)) {
    const of = events.filter((e) => e.kind === kind);
    if (!of.length) continue;
    traces.push({
      uid: `events-${kind}`, x: of.map((e) => local(e.t)), y: of.map(() => strip.y), type: "scatter",
      mode: "markers+text", name: strip.name, text: of.map((e) => `${e.value} ${e.unit}`),
      textposition: kind === "carbs" ? "bottom center" : "top center",
      marker: { symbol: strip.symbol, size: 11, color: strip.color },
      hovertemplate: `${strip.name}: %{text}<extra>%{x}</extra>`,
    });
  }
  const x0 = local(from);
  const x1 = local(xEnd);
  const shapes = rangeShapes(x0, x1);
  const annotations = [];
  if (fc) {
    const t0 = local(Date.parse(fc.times[0]));
    shapes.push({ type: "line", xref: "x", yref: "paper", x0: t0, x1: t0, y0: 0, y1: 1,
                  line: { color: "#4d5560", width: 1, dash: "dot" } });
    annotations.push({ x: t0, xref: "x", y: 1, yref: "paper", text: "now", showarrow: false,
                       yanchor: "bottom", font: { size: 11, color: "#4d5560" } });
  }
  const layout = {
    height: 420, margin: { l: 60, r: 15, t: 20, b: 40 }, hovermode: "closest",
    xaxis: { type: "date", range: [x0, x1], title: { text: "Time (local)" } },
    yaxis: { range: [y0, y1], title: { text: `Glucose (${GLUCOSE_UNIT})` }, zeroline: false },
    legend: { orientation: "h", y: -0.18 }, shapes, annotations,
    paper_bgcolor: "#ffffff", plot_bgcolor: "#ffffff",
  };
  Plotly.react(chart, traces, layout, PLOT_CONFIG);
  chart.dataset.state = fc ? "ready" : "no-forecast";
  chart.dataset.issued = fc ? fc.issued : "";
  chart.dataset.start = fc ? fc.times[0] : "";
}

// ---- risk gauges ---------------------------------------------------------------------------

const GAUGE_COLOURS = { low: "#0d7a40", moderate: "#a86b00", high: "#b0182a", none: "#8a939e" };

function drawGauge(kind, p) {
  const node = byTestId("gauge-" + kind);
  const text = byTestId("risk-" + kind);
  if (!node || !text) return;
  const level = riskLevel(p);
  text.textContent = percent(p);
  text.dataset.value = p === null || p === undefined ? "" : String(p);
  text.dataset.level = level;
  plotly().react(
    node,
    [{
      type: "indicator", mode: "gauge+number", value: p === null || p === undefined ? 0 : 100 * p,
      number: { suffix: "%", valueformat: ".0f", font: { size: 26 } },
      gauge: {
        axis: { range: [0, 100], tickvals: [0, 10, 30, 100], tickfont: { size: 10 } },
        bar: { color: GAUGE_COLOURS[level], thickness: 0.35 },
        steps: [
          { range: [0, 10], color: "#e3f4ea" },
          { range: [10, 30], color: "#fff1c7" },
          { range: [30, 100], color: "#fbe3e4" },
        ],
      },
    }],
    { height: 150, margin: { l: 30, r: 30, t: 20, b: 5 }, paper_bgcolor: "#ffffff" },
    { staticPlot: true, responsive: true },
  );
}

async function loadRisks() {
  const specs = [["hypoglycaemia", 30], ["hyperglycaemia", 60]];
  await Promise.all(specs.map(async ([event, within]) => {
    try {
      const r = await api(`${base}/risk` + query({ event, within_min: within }));
      drawGauge(event, r.probability);
    } catch (exc) {
      if (!(exc instanceof ApiError) || (exc.status !== 404 && exc.status !== 409)) throw exc;
      drawGauge(event, null);
    }
  }));
}

// ---- alerts --------------------------------------------------------------------------------

function renderAlerts() {
  const sorted = [...state.alerts.values()].sort((a, b) => Date.parse(b.time) - Date.parse(a.time));
  byTestId("patient-alerts").replaceChildren(
    ...sorted.map((a) => alertItem(a, { fresh: a.fresh, onAck })),
  );
  for (const a of sorted) a.fresh = false;
  byTestId("no-alerts").hidden = state.alerts.size > 0;
}

async function onAck(alert, button) {
  const updated = await acknowledge(alert, button);
  if (!updated) return;
  state.alerts.set(updated.id, updated);
  renderAlerts();
}

async function loadAlerts() {
  const list = await api("/api/alerts" + query({ patient_id: patientId }));
  for (const a of list) state.alerts.set(a.id, { ...a, fresh: state.alerts.get(a.id)?.fresh });
  renderAlerts();
}

// ---- live ----------------------------------------------------------------------------------

async function refresh() {
  await loadReadings();
  draw();
  loadForecast().catch((exc) => showError(exc.message));
}

function onMessage(message) {
  if (message.patient_id && message.patient_id !== patientId) return;
  if (message.type === "update") {
    showLatest(message);
    refresh().catch((exc) => showError(exc.message));
  } else if (message.type === "alert") {
    state.alerts.set(message.id, { ...message, fresh: true });
    renderAlerts();
  }
}

// ---- what-if -------------------------------------------------------------------------------

const ACTION_KINDS = [
  ["none", "Nothing", ""],
  ["bolus", "Insulin bolus", "U"],
  ["carbs", "Carbohydrate", "g"],
  ["basal", "Basal rate", "U/h"],
];
const DEFAULT_SCENARIOS = [
  ["4 U bolus", [["bolus", 4, 0]]],
  ["6 U bolus", [["bolus", 6, 0]]],
  ["15 g carbs", [["carbs", 15, 0]]],
];
const MAX_SCENARIOS = 5; // the API compares up to five
const SCENARIO_COLOURS = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#7a5c00"]; // Okabe-Ito

const scenarioBox = byTestId("whatif-scenarios");
const whatifStatus = byTestId("whatif-status");
let fieldSeq = 0;

function actionRow(kind = "none", value = "", atMin = 0) {
  const n = ++fieldSeq;
  const unit = el("span", { class: "small-print" });
  const kindSelect = el(
    "select",
    { id: `kind-${n}`, dataset: { testid: "action-kind" } },
    ACTION_KINDS.map(([k, label]) => el("option", { value: k, selected: k === kind }, label)),
  );
  const amount = el("input", { id: `amount-${n}`, type: "number", min: "0", step: "any",
                               inputmode: "decimal", value: String(value), dataset: { testid: "action-value" } });
  const at = el("input", { id: `at-${n}`, type: "number", min: "0", max: "1440", step: "5",
                           value: String(atMin), dataset: { testid: "action-at" } });
  const sync = () => {
    const spec = ACTION_KINDS.find(([k]) => k === kindSelect.value);
    unit.textContent = spec[2] ? `(${spec[2]})` : "";
    amount.disabled = at.disabled = kindSelect.value === "none";
  };
  kindSelect.addEventListener("change", sync);
  const row = el(
    "div",
    { class: "action", dataset: { testid: "whatif-action" } },
    el("div", {}, el("label", { for: `kind-${n}` }, "Action"), kindSelect),
    el("div", {}, el("label", { for: `amount-${n}` }, "Amount ", unit), amount),
    el("div", {}, el("label", { for: `at-${n}` }, "In (min)"), at),
    el("button", { type: "button", class: "small", "aria-label": "Remove this action",
                   onclick: () => { row.remove(); renumber(); } }, "×"),
  );
  sync();
  return row;
}

function scenarioFieldset(name, actions) {
  const n = ++fieldSeq;
  const list = el("div", { class: "actions" }, actions.map(([k, v, t]) => actionRow(k, v, t)));
  const box = el(
    "fieldset",
    { class: "scenario", dataset: { testid: "whatif-scenario" } },
    el("legend", {}, "Scenario"),
    el("label", { for: `name-${n}` }, "Name"),
    el("input", { id: `name-${n}`, class: "name", value: name, maxlength: "60", required: true,
                  dataset: { testid: "scenario-name" } }),
    list,
    el("div", { class: "whatif-buttons" },
      el("button", { type: "button", class: "small", onclick: () => list.append(actionRow("bolus", "", 0)) },
         "Add action"),
      el("button", { type: "button", class: "small", dataset: { testid: "whatif-remove-scenario" },
                     onclick: () => { box.remove(); renumber(); } }, "Remove scenario")),
  );
  return box;
}

function renumber() {
  const boxes = [...scenarioBox.querySelectorAll("fieldset.scenario")];
  boxes.forEach((box, i) => {
    box.querySelector("legend").textContent = `Scenario ${i + 1}`;
    box.querySelector('[data-testid="whatif-remove-scenario"]').hidden = boxes.length <= 1;
  });
  byTestId("whatif-add-scenario").disabled = boxes.length >= MAX_SCENARIOS;
}

/** The form as the API's CompareIn, or an error message naming what to fix. */
function readScenarios(horizon) {
  const scenarios = {};
  const names = [];
  for (const [i, box] of [...scenarioBox.querySelectorAll("fieldset.scenario")].entries()) {
    const name = box.querySelector('[data-testid="scenario-name"]').value.trim();
    if (!name) return { error: `Scenario ${i + 1} needs a name.` };
    if (name in scenarios) return { error: `Two scenarios are called "${name}": give each its own name.` };
    const actions = [];
    for (const row of box.querySelectorAll('[data-testid="whatif-action"]')) {
      const kind = row.querySelector('[data-testid="action-kind"]').value;
      if (kind === "none") continue;
      const value = Number(row.querySelector('[data-testid="action-value"]').value);
      const at = Number(row.querySelector('[data-testid="action-at"]').value || 0);
      const label = ACTION_KINDS.find(([k]) => k === kind)[1].toLowerCase();
      if (!Number.isFinite(value) || value <= 0 || value > 1000) {
        return { error: `"${name}": the ${label} amount must be a number above 0.` };
      }
      if (!Number.isFinite(at) || at < 0 || at >= horizon) {
        return { error: `"${name}": the ${label} must happen between 0 and ${horizon} min from now.` };
      }
      actions.push({ kind, at_min: at, value });
    }
    scenarios[name] = actions;
    names.push(name);
  }
  if (!names.length) return { error: "Add at least one scenario." };
  return { scenarios, names };
}

/** A name as plain text in plotly labels (which would read tags such as <a> or <br>). */
function plotText(text) {
  return text.replace(/[<>&%{}]/g, "");
}

function translucent(hex, alpha) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

function range(o, key, digits = 0, suffix = "") {
  const v = o[key];
  if (v === undefined) return el("span", { class: "muted" }, "—");
  const lo = o[key + "_lo"];
  const hi = o[key + "_hi"];
  return [
    `${v.toFixed(digits)}${suffix}`,
    lo !== undefined && hi !== undefined
      ? [" ", el("span", { class: "outcome-range" }, `(${lo.toFixed(digits)}–${hi.toFixed(digits)})`)]
      : null,
  ];
}

function drawComparison(result, names) {
  const Plotly = plotly();
  const traces = [];
  const yValues = [];
  let t0 = null;
  let tEnd = null;
  // the last hour of CGM, for context
  const last = lastReadingTime();
  const context = last === null ? [] : state.readings.filter(([t]) => t >= last - HOUR_MS);
  if (context.length) {
    traces.push({ uid: "cgm", x: context.map(([t]) => local(t)), y: context.map(([, v]) => v),
                  type: "scatter", mode: "lines+markers", name: "CGM (last hour)",
                  line: { color: "#4d5560", width: 1.5 }, marker: { size: 3, color: "#4d5560" } });
    yValues.push(...context.map(([, v]) => v));
  }
  names.forEach((name, i) => {
    const fc = result.forecasts[name];
    if (!fc) return;
    const colour = SCENARIO_COLOURS[i % SCENARIO_COLOURS.length];
    const x = fc.times.map((t) => local(Date.parse(t)));
    t0 = t0 ?? Date.parse(fc.times[0]);
    tEnd = Math.max(tEnd ?? 0, Date.parse(fc.times[fc.times.length - 1]));
    const band = fc.bands["95"];
    if (band) {
      traces.push({ uid: `s${i}-lower`, x, y: band.lower, type: "scatter", mode: "lines",
                    line: { width: 0 }, showlegend: false, legendgroup: `s${i}`, hoverinfo: "skip" });
      traces.push({ uid: `s${i}-upper`, x, y: band.upper, type: "scatter", mode: "lines",
                    line: { width: 0 }, fill: "tonexty", fillcolor: translucent(colour, 0.15),
                    showlegend: false, legendgroup: `s${i}`, hoverinfo: "skip" });
      yValues.push(...band.lower, ...band.upper);
    }
    traces.push({ uid: `s${i}-median`, x, y: fc.median, type: "scatter", mode: "lines",
                  name: `${plotText(name)} (median, 95% band)`, legendgroup: `s${i}`,
                  line: { color: colour, width: 2.5, dash: ["solid", "dash", "dot", "dashdot", "longdash"][i % 5] },
                  hovertemplate: `%{y:.0f} mg/dL<extra>${plotText(name)}</extra>` });
    yValues.push(...fc.median);
  });
  const [y0, y1] = yRange(yValues);
  const x0 = local(context.length ? context[0][0] : t0);
  const x1 = local(tEnd);
  const shapes = rangeShapes(x0, x1);
  if (t0 !== null) {
    shapes.push({ type: "line", xref: "x", yref: "paper", x0: local(t0), x1: local(t0), y0: 0, y1: 1,
                  line: { color: "#4d5560", width: 1, dash: "dot" } });
  }
  const node = byTestId("compare-chart");
  Plotly.react(node, traces, {
    height: 420, margin: { l: 60, r: 15, t: 20, b: 40 }, hovermode: "x unified",
    xaxis: { type: "date", range: [x0, x1], title: { text: "Time (local)" } },
    yaxis: { range: [y0, y1], title: { text: `Glucose (${GLUCOSE_UNIT})` }, zeroline: false },
    legend: { orientation: "h", y: -0.18 }, shapes,
    paper_bgcolor: "#ffffff", plot_bgcolor: "#ffffff",
  }, PLOT_CONFIG);
  node.dataset.state = "ready";
  node.dataset.scenarios = String(names.length);

  const tbody = byTestId("compare-table").querySelector("tbody");
  tbody.replaceChildren(...names.map((name, i) => {
    const o = result.outcomes[name] || {};
    const nadirLow = (o.nadir_mg_dl_lo ?? o.nadir_mg_dl) < RANGE_LOW;
    return el(
      "tr",
      { dataset: { testid: "compare-row", scenario: name } },
      el("th", { scope: "row" },
         el("span", { "aria-hidden": "true", class: "swatch" }, "■ "), name),
      el("td", { class: "num", dataset: { testid: "outcome-tir" } }, range(o, "tir_70_180_percent", 0, "%")),
      el("td", { class: "num", dataset: { testid: "outcome-tbr" } }, range(o, "tbr_70_percent", 0, "%")),
      el("td", { class: "num", dataset: { testid: "outcome-peak" } }, range(o, "peak_mg_dl")),
      el("td", { class: "num" + (nadirLow ? " outcome-bad" : ""), dataset: { testid: "outcome-nadir" },
                 title: nadirLow ? "the 95% range reaches below 70 mg/dL" : null },
         nadirLow ? "⚠ " : null, range(o, "nadir_mg_dl")),
    );
  }));
  tbody.querySelectorAll(".swatch").forEach((s, i) => {
    s.style.color = SCENARIO_COLOURS[i % SCENARIO_COLOURS.length];
  });
}

async function runComparison(event) {
  event.preventDefault();
  const horizon = Number(byTestId("whatif-horizon").value);
  const read = readScenarios(horizon);
  if (read.error) {
    whatifStatus.textContent = read.error;
    whatifStatus.className = "error";
    return;
  }
  const button = byTestId("whatif-run");
  button.disabled = true;
  whatifStatus.className = "muted";
  whatifStatus.textContent = `Running the twin on ${read.names.length} scenario(s)…`;
  try {
    const result = await api(`${base}/compare`, {
      method: "POST", json: { scenarios: read.scenarios, horizon_min: horizon },
    });
    byTestId("whatif-result").hidden = false;
    drawComparison(result, read.names);
    whatifStatus.textContent = `Compared ${read.names.length} scenario(s) over ${horizon / 60} h.`;
  } catch (exc) {
    whatifStatus.className = "error";
    whatifStatus.textContent = "The comparison failed: " + exc.message;
  } finally {
    button.disabled = false;
  }
}

function setUpWhatIf() {
  for (const [name, actions] of DEFAULT_SCENARIOS) scenarioBox.append(scenarioFieldset(name, actions));
  renumber();
  byTestId("whatif-add-scenario").addEventListener("click", () => {
    const n = scenarioBox.querySelectorAll("fieldset.scenario").length + 1;
    scenarioBox.append(scenarioFieldset(`Scenario ${n}`, [["none", "", 0]]));
    renumber();
  });
  byTestId("whatif-form").addEventListener("submit", runComparison);
}

// ---- start ---------------------------------------------------------------------------------

start(async () => {
  renderHeader(null);
  byTestId("patient-id").textContent = patientId;
  byTestId("dosing-link").href = `/patients/${encodeURIComponent(patientId)}/dosing`;
  setUpWhatIf();
  historySelect.addEventListener("change", draw);
  horizonSelect.addEventListener("change", () => {
    forecastAt = 0;
    loadForecast().catch((exc) => showError(exc.message));
  });
  live(`/ws/patients/${encodeURIComponent(patientId)}`, onMessage, byTestId("live-status"), () => {
    refresh().catch((exc) => showError(exc.message));
    loadAlerts().catch((exc) => showError(exc.message));
  });
  await loadPatient();
  await Promise.all([loadReadings(), loadEvents().catch((exc) => showError(exc.message))]);
  draw();
  await Promise.all([loadForecast(), loadRisks(), loadAlerts()]);
});
