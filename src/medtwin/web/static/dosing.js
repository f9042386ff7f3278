// Model-informed precision dosing for one patient: covariates, doses given and measured levels
// in, each candidate regimen's concentration curve, PTA and P(toxic) (with their Monte-Carlo
// standard errors) out, the recommended regimen highlighted.

import { PLOT_CONFIG, api, byTestId, el, plotly, renderHeader, start } from "/static/app.js";

const patientId = decodeURIComponent(location.pathname.split("/")[2] || "");
const base = `/api/patients/${encodeURIComponent(patientId)}`;

const UNITS = { auc24: "mg·h/L", trough: "mg/L", peak: "mg/L" };
const METRIC_NAMES = { auc24: "AUC24", trough: "trough", peak: "peak" };
const COLOURS = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#7a5c00", "#56b4e9", "#e69f00", "#000000"];
const DASHES = ["solid", "dash", "dot", "dashdot", "longdash"];
const MAX_CANDIDATES = 8;

// the worked example of docs/population.md: 80 kg, CrCL 60 mL/min, 1 g q12h over 1 h
const EXAMPLE = {
  covariates: { weight_kg: 80, crcl_ml_min: 60, haemodialysis: 0 },
  doses: [0, 12, 24, 36].map((t) => [t, 1000, 1]),
  levels: [[38, 27.5], [47.5, 21.0]],
  target: { kind: "auc24", low: 400, high: 600 },
  toxicity: { kind: "trough", above: 20 },
  candidates: [[1000, 12, 1], [750, 12, 1], [1250, 24, 1.25]],
};

const DOSE_FIELDS = [
  ["time_h", "Time (h)", "0.5"],
  ["dose_mg", "Dose (mg)", "50"],
  ["duration_h", "Infusion (h)", "0.25"],
];
const LEVEL_FIELDS = [
  ["time_h", "Time (h)", "0.5"],
  ["concentration_mg_l", "Level (mg/L)", "0.1"],
];
const CANDIDATE_FIELDS = [
  ["dose_mg", "Dose (mg)", "50"],
  ["every_h", "Every (h)", "1"],
  ["duration_h", "Infusion (h)", "0.25"],
];

const status = byTestId("dosing-status");
let models = [];
let fieldSeq = 0;

// ---- the form ------------------------------------------------------------------------------

/** One row of number inputs (each labelled with its unit) and a remove button. */
function numberRow(kind, fields, values) {
  const row = el("div", { class: "action", dataset: { testid: `${kind}-row` } });
  // as many equal columns as fields (the shared .action grid has three), narrow enough for the aside
  row.style.gridTemplateColumns = `repeat(${fields.length}, minmax(0, 1fr)) auto`;
  fields.forEach(([name, label, step], i) => {
    const id = `${kind}-${name}-${++fieldSeq}`;
    row.append(el("div", {},
      el("label", { for: id }, label),
      el("input", { id, type: "number", min: "0", step, inputmode: "decimal",
                    value: values[i] === undefined ? "" : String(values[i]),
                    dataset: { testid: `${kind}-${name}`, field: name } })));
    row.lastChild.querySelector("input").style.minWidth = "0";
  });
  row.append(el("button", { type: "button", class: "small", "aria-label": `Remove this ${kind}`,
                            onclick: () => row.remove() }, "×"));
  return row;
}

function rowList(kind, fields, initial, addButton, max = 1000) {
  const box = byTestId(`dosing-${kind}s`);
  box.replaceChildren(...initial.map((v) => numberRow(kind, fields, v)));
  byTestId(addButton).addEventListener("click", () => {
    if (box.children.length < max) box.append(numberRow(kind, fields, []));
  });
}

/** The rows as objects, or an error naming the row and field to fix. */
function readRows(kind, label) {
  const out = [];
  const rows = byTestId(`dosing-${kind}s`).querySelectorAll(`[data-testid="${kind}-row"]`);
  for (const [i, row] of [...rows].entries()) {
    const item = {};
    for (const input of row.querySelectorAll("input")) {
      const value = input.value.trim() === "" ? NaN : Number(input.value);
      if (!Number.isFinite(value) || value < 0) {
        const name = row.querySelector(`label[for="${input.id}"]`).textContent;
        return { error: `${label} ${i + 1}: "${name}" must be a number of at least 0.` };
      }
      item[input.dataset.field] = value;
    }
    out.push(item);
  }
  return { rows: out };
}

function showCovariates(model, values) {
  const box = byTestId("dosing-covariates");
  box.replaceChildren(...model.covariates.map((c) => {
    const id = `covariate-${c.name}`;
    const value = values[c.name] ?? c.default ?? "";
    const label = c.unit === "1" ? c.description : `${c.description} (${c.unit})`;
    return el("div", { class: "field" },
      el("label", { for: id, title: label }, covariateLabel(c)),
      el("input", { id, type: "number", min: String(c.minimum), max: String(c.maximum),
                    step: c.unit === "1" ? "1" : "any", value: String(value), size: "7",
                    title: label, dataset: { testid: id, covariate: c.name } }));
  }));
  byTestId("dosing-model-reference").textContent = `${model.structure}. ${model.reference}`;
}

function covariateLabel(c) {
  const names = { weight_kg: "Weight", crcl_ml_min: "Creatinine clearance", haemodialysis: "Haemodialysis (0 or 1)" };
  const name = names[c.name] || c.name;
  return c.unit === "1" ? name : `${name} (${c.unit})`;
}

function syncUnits() {
  const kind = byTestId("target-kind").value;
  for (const node of [byTestId("target-unit"), ...document.querySelectorAll(".unit-of-target")]) {
    node.textContent = `(${UNITS[kind]})`;
  }
  const tox = byTestId("toxicity-kind").value;
  byTestId("toxicity-unit").textContent = tox === "none" ? "" : `(${UNITS[tox]})`;
  byTestId("toxicity-above").disabled = tox === "none";
  const search = byTestId("candidate-mode").value === "recommend";
  byTestId("dosing-candidates").hidden = search;
  byTestId("dosing-add-candidate").hidden = search;
  byTestId("search-note").hidden = !search;
}

/** The form as the API's DosingIn, or an error message naming what to fix. */
function readForm() {
  const model = models.find((m) => m.name === byTestId("dosing-model").value);
  if (!model) return { error: "Choose a population model." };
  const covariates = {};
  for (const input of byTestId("dosing-covariates").querySelectorAll("input")) {
    const c = model.covariates.find((x) => x.name === input.dataset.covariate);
    const value = Number(input.value);
    if (input.value.trim() === "" || !Number.isFinite(value) || value < c.minimum || value > c.maximum) {
      return { error: `${covariateLabel(c)} must be between ${c.minimum} and ${c.maximum}.` };
    }
    covariates[c.name] = value;
  }
  const doses = readRows("dose", "Dose");
  if (doses.error) return doses;
  const levels = readRows("level", "Level");
  if (levels.error) return levels;
  const low = Number(byTestId("target-low").value);
  const highText = byTestId("target-high").value.trim();
  const high = highText === "" ? null : Number(highText);
  const kind = byTestId("target-kind").value;
  if (!Number.isFinite(low) || low < 0 || (high !== null && !(high > low))) {
    return { error: `The target window needs 0 ≤ from < to (${UNITS[kind]}).` };
  }
  const toxKind = byTestId("toxicity-kind").value;
  const above = Number(byTestId("toxicity-above").value);
  if (toxKind !== "none" && !(above > 0)) return { error: "The toxicity threshold must be above 0." };
  let candidates = "recommend";
  if (byTestId("candidate-mode").value === "list") {
    const read = readRows("candidate", "Regimen");
    if (read.error) return read;
    candidates = read.rows;
    if (!candidates.length) return { error: "Add at least one candidate regimen." };
    if (candidates.length > MAX_CANDIDATES) return { error: `Compare at most ${MAX_CANDIDATES} regimens.` };
  }
  const seed = Number(byTestId("seed").value || 0);
  return {
    body: {
      model: model.name, covariates, doses: doses.rows, levels: levels.rows,
      target: { kind, low, high },
      toxicity: toxKind === "none" ? null : { kind: toxKind, above },
      candidates, n_draws: Number(byTestId("n-draws").value), seed,
    },
  };
}

// ---- the result ----------------------------------------------------------------------------

function translucent(hex, alpha) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

function regimenName(c) {
  const over = c.duration_h > 0 ? ` over ${c.duration_h} h` : " (bolus)";
  return `${c.dose_mg} mg every ${c.every_h} h${over}`;
}

function pm(p, se) {
  if (p === null || p === undefined) return "—";
  return `${(100 * p).toFixed(1)}% ± ${(100 * se).toFixed(1)}%`;
}

function exposureCell(e, digits) {
  return [
    e.median.toFixed(digits), " ",
    el("span", { class: "outcome-range" }, `(${e.lower_90.toFixed(digits)}–${e.upper_90.toFixed(digits)})`),
  ];
}

function drawChart(result, body) {
  const Plotly = plotly();
  const x = result.times_h;
  const traces = [];
  let yMax = 0;
  result.candidates.forEach((c, i) => {
    const colour = COLOURS[i % COLOURS.length];
    const name = regimenName(c) + (c.recommended ? " ★ recommended" : "");
    traces.push({ uid: `c${i}-lower`, x, y: c.curve.lower_90, type: "scatter", mode: "lines",
                  line: { width: 0 }, showlegend: false, legendgroup: `c${i}`, hoverinfo: "skip" });
    traces.push({ uid: `c${i}-upper`, x, y: c.curve.upper_90, type: "scatter", mode: "lines",
                  line: { width: 0 }, fill: "tonexty", fillcolor: translucent(colour, 0.12),
                  showlegend: false, legendgroup: `c${i}`, hoverinfo: "skip" });
    traces.push({ uid: `c${i}-median`, x, y: c.curve.median, type: "scatter", mode: "lines",
                  name: `${name} (median, 90% band)`, legendgroup: `c${i}`,
                  line: { color: colour, width: c.recommended ? 3 : 1.8, dash: DASHES[i % DASHES.length] },
                  hovertemplate: `%{y:.1f} mg/L at %{x:.1f} h<extra>${regimenName(c)}</extra>` });
    yMax = Math.max(yMax, ...c.curve.upper_90);
  });
  if (body.levels.length) {
    traces.push({ uid: "levels", x: body.levels.map((l) => l.time_h),
                  y: body.levels.map((l) => l.concentration_mg_l), type: "scatter", mode: "markers",
                  name: "Measured level", marker: { size: 10, color: "#1b1f24", symbol: "circle" },
                  hovertemplate: "%{y:.1f} mg/L at %{x:.1f} h<extra>measured</extra>" });
    yMax = Math.max(yMax, ...body.levels.map((l) => l.concentration_mg_l));
  }
  const x1 = x[x.length - 1];
  const shapes = [];
  const target = result.target;
  if (target.kind !== "auc24") {
    const hi = target.high === null ? yMax * 1.1 : target.high;
    shapes.push({ type: "rect", xref: "x", yref: "y", x0: 0, x1, y0: target.low, y1: hi, layer: "below",
                  fillcolor: "rgba(13, 120, 60, 0.10)", line: { width: 0 } });
  }
  const tox = result.toxicity;
  if (tox && tox.kind !== "auc24") {
    shapes.push({ type: "line", xref: "x", yref: "y", x0: 0, x1, y0: tox.above, y1: tox.above,
                  line: { color: "#9b1020", width: 1.5, dash: "dot" } });
  }
  const start = Math.min(...result.candidates.map((c) => c.start_h));
  shapes.push({ type: "line", xref: "x", yref: "paper", x0: start, x1: start, y0: 0, y1: 1,
                line: { color: "#4d5560", width: 1, dash: "dot" } });
  const node = byTestId("dosing-chart");
  Plotly.react(node, traces, {
    height: 460, margin: { l: 60, r: 15, t: 30, b: 50 }, hovermode: "closest",
    xaxis: { range: [0, x1], title: { text: "Time from the first dose (h)" }, zeroline: false },
    yaxis: { range: [0, yMax * 1.08], title: { text: "Concentration (mg/L)" }, zeroline: false },
    legend: { orientation: "h", y: -0.2 }, shapes,
    annotations: [{ x: start, xref: "x", y: 1, yref: "paper", text: "new regimen", showarrow: false,
                    yanchor: "bottom", font: { size: 11, color: "#4d5560" } }],
    paper_bgcolor: "#ffffff", plot_bgcolor: "#ffffff",
  }, PLOT_CONFIG);
  node.dataset.state = "ready";
  node.dataset.candidates = String(result.candidates.length);
}

function showTable(result) {
  const tbody = byTestId("dosing-table").querySelector("tbody");
  tbody.replaceChildren(...result.candidates.map((c, i) => {
    const row = el(
      "tr",
      { dataset: { testid: "dosing-row", recommended: String(c.recommended), index: String(i) },
        "aria-current": c.recommended ? "true" : null },
      el("th", { scope: "row" },
         el("span", { "aria-hidden": "true", class: "swatch" }, "■ "), regimenName(c),
         c.recommended
           ? [" ", el("span", { class: "badge low", dataset: { testid: "recommended-badge" } }, "★ Recommended")]
           : null),
      el("td", { class: "num" }, c.daily_dose_mg.toFixed(0)),
      el("td", { class: "num", dataset: { testid: "candidate-pta", value: String(c.pta) } }, pm(c.pta, c.pta_mcse)),
      el("td", { class: "num", dataset: { testid: "candidate-ptoxic" } }, pm(c.p_toxic, c.p_toxic_mcse)),
      el("td", { class: "num", dataset: { testid: "candidate-auc24" } }, exposureCell(c.exposure.auc24, 0)),
      el("td", { class: "num", dataset: { testid: "candidate-trough" } }, exposureCell(c.exposure.trough, 1)),
      el("td", { class: "num", dataset: { testid: "candidate-peak" } }, exposureCell(c.exposure.peak, 1)),
    );
    if (c.recommended) row.style.background = "#e3f4ea";
    row.querySelector(".swatch").style.color = COLOURS[i % COLOURS.length];
    return row;
  }));
  byTestId("dosing-parameters").querySelector("tbody").replaceChildren(
    ...Object.entries(result.parameters).map(([name, p]) => el(
      "tr", { dataset: { testid: "parameter-row", parameter: name } },
      el("th", { scope: "row" }, name),
      el("td", { class: "num" }, p.map.toFixed(2)),
      el("td", { class: "num" }, p.typical.toFixed(2)),
      el("td", { class: "num" }, `${p.lower_90.toFixed(2)}–${p.upper_90.toFixed(2)}`),
      el("td", {}, p.unit),
    )),
  );
}

async function run(event) {
  event.preventDefault();
  const read = readForm();
  if (read.error) {
    status.className = "error";
    status.textContent = read.error;
    return;
  }
  const button = byTestId("dosing-run");
  button.disabled = true;
  status.className = "muted";
  status.textContent = "Individualising the model and comparing the regimens…";
  try {
    const result = await api(`${base}/dosing`, { method: "POST", json: read.body });
    byTestId("dosing-result").hidden = false;
    const target = result.target;
    const window = target.high === null ? `≥ ${target.low}` : `${target.low}–${target.high}`;
    byTestId("dosing-recommendation").textContent =
      `Recommended: ${result.recommendation}. Target ${METRIC_NAMES[target.kind]} ${window} ` +
      `${UNITS[target.kind]}; ${result.n_draws} posterior draws from ${result.n_levels} level(s).`;
    drawChart(result, read.body);
    showTable(result);
    status.textContent = `Compared ${result.candidates.length} regimen(s).`;
  } catch (exc) {
    status.className = "error";
    status.textContent = "The dosing run failed: " + exc.message;
  } finally {
    button.disabled = false;
  }
}

// ---- start ---------------------------------------------------------------------------------

start(async () => {
  renderHeader(null);
  byTestId("patient-id").textContent = patientId;
  // a fieldset is at least as wide as its content by default: let the aside's stay in it
  for (const box of document.querySelectorAll("fieldset")) box.style.minWidth = "0";
  byTestId("candidate-mode").style.maxWidth = "100%";
  document.title = `Dosing · patient ${patientId} · medtwin`;
  byTestId("back-to-patient").href = "/patients/" + encodeURIComponent(patientId);
  rowList("dose", DOSE_FIELDS, EXAMPLE.doses, "dosing-add-dose");
  rowList("level", LEVEL_FIELDS, EXAMPLE.levels, "dosing-add-level", 200);
  rowList("candidate", CANDIDATE_FIELDS, EXAMPLE.candidates, "dosing-add-candidate", MAX_CANDIDATES);
  byTestId("target-kind").value = EXAMPLE.target.kind;
  byTestId("target-low").value = String(EXAMPLE.target.low);
  byTestId("target-high").value = String(EXAMPLE.target.high);
  byTestId("toxicity-kind").value = EXAMPLE.toxicity.kind;
  byTestId("toxicity-above").value = String(EXAMPLE.toxicity.above);
  for (const id of ["target-kind", "toxicity-kind", "candidate-mode"]) {
    byTestId(id).addEventListener("change", syncUnits);
  }
  syncUnits();
  byTestId("dosing-form").addEventListener("submit", run);
  models = await api("/api/dosing/models");
  const select = byTestId("dosing-model");
  select.replaceChildren(...models.map((m) => el("option", { value: m.name }, `${m.drug} — ${m.name}`)));
  const pick = () => showCovariates(models.find((m) => m.name === select.value), EXAMPLE.covariates);
  select.addEventListener("change", pick);
  pick();
  byTestId("dosing-form").dataset.state = "ready";
});
