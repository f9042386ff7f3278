// medtwin dashboard: what every page shares.  The session (bearer token) lives in
// sessionStorage, never in a cookie, so the API has no CSRF surface; every request carries it
// in the Authorization header, and a 401 sends the user back to the login page.
//
// Text reaches the DOM only through textContent (el() below), never innerHTML, so nothing the
// API returns can become markup.

const KEY = "medtwin.session";
const NOTICE = "medtwin.notice";

export const GLUCOSE_UNIT = "mg/dL";
export const CGM_CODE = "99504-3";
export const RANGE_LOW = 70;
export const RANGE_HIGH = 180;

// ---- session ----------------------------------------------------------------------------

export function session() {
  try {
    const s = JSON.parse(sessionStorage.getItem(KEY) || "null");
    if (s && s.token && (!s.expiresAt || s.expiresAt > Date.now())) return s;
  } catch (_) {
    /* a damaged entry is the same as none */
  }
  return null;
}

export function saveSession(tokenResponse, username) {
  const s = {
    token: tokenResponse.access_token,
    role: tokenResponse.role,
    username,
    expiresAt: Date.now() + 1000 * (tokenResponse.expires_in || 3600),
  };
  sessionStorage.setItem(KEY, JSON.stringify(s));
  return s;
}

export function takeNotice() {
  const n = sessionStorage.getItem(NOTICE);
  sessionStorage.removeItem(NOTICE);
  return n;
}

/** Back to the login page (remembering where we were), with a reason shown there. */
export function toLogin(reason) {
  sessionStorage.removeItem(KEY);
  if (reason) sessionStorage.setItem(NOTICE, reason);
  const here = location.pathname + location.search;
  location.replace(here === "/" ? "/" : "/?next=" + encodeURIComponent(here));
  // stop the caller: nothing after a redirect should run
  throw new Halt();
}

class Halt extends Error {}

/** The session, or off to the login page. */
export function requireSession() {
  const s = session();
  if (!s) toLogin(sessionStorage.getItem(KEY) ? "Your session has expired: please log in again." : null);
  return s;
}

export function logout() {
  sessionStorage.removeItem(KEY);
  location.replace("/");
}

/** Same-origin path to go to after login (anything else falls back to the ward). */
export function safeNext(raw) {
  return raw && /^\/(?!\/)[A-Za-z0-9\-._~/%?=&]*$/.test(raw) ? raw : "/ward";
}

// ---- the API ----------------------------------------------------------------------------

export class ApiError extends Error {
  constructor(status, error, detail) {
    super(detail || error || `HTTP ${status}`);
    this.status = status;
    this.error = error;
  }
}

/** JSON from the API with the bearer token; 401 -> login page; other failures -> ApiError. */
export async function api(path, { method = "GET", json, form } = {}) {
  const s = requireSession();
  const headers = { Authorization: "Bearer " + s.token, Accept: "application/json" };
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = new URLSearchParams(form);
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body, cache: "no-store" });
  } catch (exc) {
    throw new ApiError(0, "NetworkError", "The service cannot be reached: " + exc.message);
  }
  if (response.status === 401) toLogin("Your session has ended: please log in again.");
  let payload = null;
  try {
    payload = await response.json();
  } catch (_) {
    /* an empty or non-JSON body */
  }
  if (!response.ok) {
    throw new ApiError(response.status, payload && payload.error, payload && payload.detail);
  }
  return payload;
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null) q.set(k, v);
  const text = q.toString();
  return text ? "?" + text : "";
}

// ---- live updates -----------------------------------------------------------------------

/**
 * A WebSocket that reconnects (with back-off) until closed; `onMessage` gets each parsed
 * message, `statusEl` (optional) shows the connection state.  A close for a policy violation
 * (1008: bad token or not allowed) is not retried.
 */
export function live(path, onMessage, statusEl, onReconnect) {
  let socket = null;
  let delay = 1000;
  let stopped = false;
  let opened = false;
  const show = (state, text) => {
    if (!statusEl) return;
    statusEl.dataset.state = state;
    statusEl.textContent = text;
  };
  const connect = () => {
    const s = requireSession();
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const url = `${scheme}//${location.host}${path}?access_token=${encodeURIComponent(s.token)}`;
    show("connecting", "connecting…");
    socket = new WebSocket(url);
    socket.addEventListener("open", () => {
      delay = 1000;
      show("open", "live");
      if (opened && onReconnect) onReconnect();
      opened = true;
    });
    socket.addEventListener("message", (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (_) {
        return;
      }
      onMessage(message);
    });
    socket.addEventListener("close", async (event) => {
      if (stopped) return;
      if (event.code === 1008) {
        // the token expired (401 -> login) or the user may not see this (say so, stop)
        show("closed", "not live");
        try {
          await api("/auth/me");
        } catch (_) {
          /* api() redirected already if it had to */
        }
        return;
      }
      show("closed", "reconnecting…");
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    });
  };
  connect();
  return { close: () => { stopped = true; if (socket) socket.close(); } };
}

// ---- DOM --------------------------------------------------------------------------------

/** el("a", {href: "/x", class: "y", dataset: {testid: "z"}}, "text", child, ...) */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function byTestId(id, root = document) {
  return root.querySelector(`[data-testid="${id}"]`);
}

/** Fill the page header: navigation for the role, who is logged in, log out. */
export function renderHeader(active) {
  const s = requireSession();
  const header = document.querySelector("header.topbar");
  const links = [["ward", "/ward", "Ward"]];
  if (["admin", "clinician", "researcher"].includes(s.role)) links.push(["hospital", "/hospital", "Hospital"]);
  if (s.role === "admin") links.push(["audit", "/audit", "Audit log"]);
  header.replaceChildren(
    el("a", { class: "brand", href: "/ward" }, "medtwin"),
    el(
      "nav",
      { "aria-label": "Main" },
      links.map(([key, href, label]) =>
        el("a", { href, "aria-current": key === active ? "page" : null }, label),
      ),
    ),
    el("span", { class: "user", dataset: { testid: "user" } }, `${s.username} (${s.role})`),
    el("button", { type: "button", dataset: { testid: "logout" }, onclick: logout }, "Log out"),
  );
  return s;
}

export function showError(message) {
  const box = byTestId("page-error");
  if (!box) return;
  box.textContent = message;
  box.hidden = !message;
}

/** Run an async page start; report failures in the page instead of the console only. */
export function start(main) {
  main().catch((exc) => {
    if (exc instanceof Halt) return;
    console.error(exc);
    showError(exc.message || String(exc));
  });
}

// ---- formatting -------------------------------------------------------------------------

export function glucoseClass(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "";
  if (v < 54) return "very-low";
  if (v < RANGE_LOW) return "low";
  if (v > 250) return "very-high";
  if (v > RANGE_HIGH) return "high";
  return "in-range";
}

const GLUCOSE_WORDS = {
  "very-low": "very low", low: "low", "in-range": "in range", high: "high", "very-high": "very high",
};

/** <span class="glucose ...">123<span class="unit">mg/dL</span></span> with a spoken label. */
export function glucoseNode(v, extraClass = "") {
  if (v === null || v === undefined || Number.isNaN(v)) {
    return el("span", { class: "glucose muted " + extraClass }, "—");
  }
  const cls = glucoseClass(v);
  return el(
    "span",
    {
      class: `glucose ${cls} ${extraClass}`,
      title: GLUCOSE_WORDS[cls],
      dataset: { value: String(v) },
    },
    Math.round(v).toString(),
    el("span", { class: "unit" }, GLUCOSE_UNIT),
  );
}

// Dexcom-style arrows for a rate of change in mg/dL/min (as medtwin.api._host.trend_arrow).
const TRENDS = [
  [-3, "⇊", "falling rapidly (more than 3 mg/dL per minute)"],
  [-2, "↓", "falling (2–3 mg/dL per minute)"],
  [-1, "↘", "falling slowly (1–2 mg/dL per minute)"],
  [1, "→", "steady (within 1 mg/dL per minute)"],
  [2, "↗", "rising slowly (1–2 mg/dL per minute)"],
  [3, "↑", "rising (2–3 mg/dL per minute)"],
];

export function trend(slope) {
  if (slope === null || slope === undefined || Number.isNaN(slope)) {
    return { arrow: "", label: "no trend yet" };
  }
  for (const [limit, arrow, label] of TRENDS) if (slope < limit) return { arrow, label };
  return { arrow: "⇈", label: "rising rapidly (more than 3 mg/dL per minute)" };
}

export function trendNode(slope) {
  const t = trend(slope);
  const rate =
    slope === null || slope === undefined ? "" : ` (${slope > 0 ? "+" : ""}${slope.toFixed(1)} mg/dL/min)`;
  return el(
    "span",
    { class: "trend", title: t.label + rate, "aria-label": "trend: " + t.label, role: "img",
      dataset: { slope: slope === null || slope === undefined ? "" : String(slope) } },
    t.arrow || "–",
  );
}

export function percent(p, digits = 0) {
  return p === null || p === undefined || Number.isNaN(p) ? "—" : `${(100 * p).toFixed(digits)}%`;
}

export function riskLevel(p) {
  if (p === null || p === undefined || Number.isNaN(p)) return "none";
  if (p >= 0.3) return "high";
  if (p >= 0.1) return "moderate";
  return "low";
}

export const RISK_LABELS = { hypoglycaemia: "Hypo", hyperglycaemia: "Hyper" };
export const RISK_NAMES = {
  hypoglycaemia: "Hypoglycaemia (< 70 mg/dL within 30 min)",
  hyperglycaemia: "Hyperglycaemia (> 250 mg/dL within 60 min)",
};

export function riskBadge(kind, p) {
  const level = riskLevel(p);
  return el(
    "span",
    {
      class: "badge " + level,
      title: `${RISK_NAMES[kind] || kind}: ${percent(p)} probability (${level} risk)`,
      dataset: { testid: "risk-" + kind, level, value: p === null || p === undefined ? "" : String(p) },
    },
    `${RISK_LABELS[kind] || kind} ${percent(p)}`,
  );
}

const TIME = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const DATETIME = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
});

export function clock(iso) {
  return iso ? TIME.format(new Date(iso)) : "—";
}

export function stamp(iso) {
  return iso ? DATETIME.format(new Date(iso)) : "—";
}

/** A <time> element showing the local clock time, the full date on hover. */
export function timeNode(iso, full = false) {
  if (!iso) return el("span", { class: "muted" }, "—");
  return el("time", { datetime: iso, title: stamp(iso) }, full ? stamp(iso) : clock(iso));
}

/** Time in range (70–180 mg/dL) and below range (< 70) of CGM values, as fractions. */
export function timeInRange(values) {
  const n = values.length;
  if (!n) return { n: 0, tir: null, tbr: null };
  let inRange = 0;
  let below = 0;
  for (const v of values) {
    if (v < RANGE_LOW) below += 1;
    else if (v <= RANGE_HIGH) inRange += 1;
  }
  return { n, tir: inRange / n, tbr: below / n };
}

export const ALERT_NAMES = { hypoglycaemia: "Hypoglycaemia risk", hyperglycaemia: "Hyperglycaemia risk" };

/** One alert as a list item (with an Acknowledge button when it is not acknowledged). */
export function alertItem(alert, { showPatient = false, fresh = false, onAck } = {}) {
  const acked = Boolean(alert.acknowledged_by);
  const item = el(
    "li",
    {
      class: (acked ? "acknowledged " : "") + (fresh ? "fresh" : ""),
      dataset: { testid: "alert-item", kind: alert.kind, alertId: String(alert.id ?? ""),
                 patientId: alert.patient_id },
    },
    el(
      "div",
      { class: "alert-head" },
      el(
        "span",
        { class: "alert-kind" },
        ALERT_NAMES[alert.kind] || alert.kind,
        " ",
        el("span", { class: "badge " + riskLevel(alert.probability) }, percent(alert.probability)),
      ),
      el("span", { class: "alert-time" }, timeNode(alert.time)),
    ),
    showPatient
      ? el("div", {}, "Patient ", el("a", { href: "/patients/" + encodeURIComponent(alert.patient_id) }, alert.patient_id))
      : null,
    el("div", { class: "alert-message", dataset: { testid: "alert-message" } }, alert.message),
    acked
      ? el("div", { class: "small-print" }, "Acknowledged by " + alert.acknowledged_by)
      : onAck && alert.id !== null && alert.id !== undefined
        ? el("button", { type: "button", class: "small", dataset: { testid: "alert-ack" },
                         onclick: (e) => onAck(alert, e.currentTarget) }, "Acknowledge")
        : null,
  );
  return item;
}

/** POST the acknowledgement; returns the updated alert (or null, with the error shown). */
export async function acknowledge(alert, button) {
  if (button) button.disabled = true;
  try {
    return await api(`/api/alerts/${encodeURIComponent(alert.id)}/ack`, { method: "POST" });
  } catch (exc) {
    if (button) button.disabled = false;
    showError("Could not acknowledge the alert: " + exc.message);
    return null;
  }
}

/** Plotly, loaded by a classic script before the page's module. */
export function plotly() {
  if (!window.Plotly) throw new Error("the chart library (plotly.js) did not load");
  return window.Plotly;
}

export const PLOT_CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["select2d", "lasso2d"] };

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
