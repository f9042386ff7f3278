// The audit log (admins): entries, paged back by sequence number, and the hash chain's state.

import { ApiError, api, byTestId, el, query, renderHeader, showError, start, timeNode } from "/static/app.js";

const PAGE = 100;
const chain = byTestId("audit-chain-status");
const tbody = byTestId("audit-table").querySelector("tbody");
const older = byTestId("audit-older");
let oldestSeq = null;

async function verify() {
  chain.removeAttribute("data-ok");
  chain.textContent = "Verifying…";
  const r = await api("/api/audit/verify");
  chain.dataset.ok = String(r.ok);
  chain.dataset.entries = String(r.n_entries);
  chain.textContent = r.ok
    ? `Chain intact: all ${r.n_entries} entries verify.`
    : `Chain broken at entry #${r.first_bad_seq}: ${r.reason}. ${r.n_entries} entries checked.`;
}

function row(e) {
  return el(
    "tr",
    { dataset: { testid: "audit-row", seq: String(e.seq) } },
    el("td", { class: "num" }, String(e.seq)),
    el("td", {}, timeNode(e.time, true)),
    el("td", {}, e.actor),
    el("td", {}, e.role),
    el("td", {}, e.action),
    el("td", {}, e.resource),
    el("td", { class: e.outcome === "granted" ? "" : "outcome-denied" }, e.outcome),
    el("td", { class: "small-print" }, e.detail || ""),
  );
}

async function loadPage() {
  older.disabled = true;
  const entries = await api("/api/audit" + query({ limit: PAGE, before_seq: oldestSeq }));
  tbody.append(...entries.map(row));
  if (entries.length) oldestSeq = entries[entries.length - 1].seq;
  older.hidden = entries.length < PAGE || oldestSeq <= 1;
  older.disabled = false;
}

start(async () => {
  const s = renderHeader("audit");
  if (s.role !== "admin") {
    showError("Only administrators can read the audit log.");
    chain.textContent = "—";
    older.hidden = true;
    return;
  }
  byTestId("audit-verify").addEventListener("click", () => verify().catch((exc) => showError(exc.message)));
  older.addEventListener("click", () => loadPage().catch((exc) => showError(exc.message)));
  try {
    await Promise.all([verify(), loadPage()]);
  } catch (exc) {
    if (exc instanceof ApiError && exc.status === 403) {
      showError("Only administrators can read the audit log.");
      return;
    }
    throw exc;
  }
});
