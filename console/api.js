// Talking to the gateway, and the few DOM helpers every panel shares.
// Everything the API returns reaches the page through textContent, value or attributes only.

const KEY_NAMES = { app: "vgw.appKey", admin: "vgw.adminKey" };

// Keys live only in this tab's sessionStorage: gone when the tab closes, never in a URL.
export const keys = {
  get: (kind) => sessionStorage.getItem(KEY_NAMES[kind]),
  set: (kind, value) => sessionStorage.setItem(KEY_NAMES[kind], value),
  clear: (kind) => sessionStorage.removeItem(KEY_NAMES[kind]),
};

/** What the page may show of a key: its first 4 characters. */
export const mask = (key) => `${key.slice(0, 4)}…`;

export class ApiError extends Error {
  constructor(message, { status = 0, code = null, retryAfter = null } = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

/**
 * Calls /api<path> with the app or admin key from sessionStorage (or `key`, to try one out).
 * Resolves to {status, headers, body}; rejects with an ApiError carrying the API's message.
 */
export async function call(path, { auth = "app", key, method = "GET", json, form } = {}) {
  const headers = {};
  const secret = key ?? (auth ? keys.get(auth) : null);
  if (auth === "app" && secret) headers.Authorization = `Bearer ${secret}`;
  if (auth === "admin" && secret) headers["x-admin-key"] = secret;
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form; // the browser writes the multipart boundary itself
  }
  let response;
  try {
    response = await fetch(`/api${path}`, { method, headers, body, cache: "no-store" });
  } catch {
    throw new ApiError("Network error: the gateway could not be reached. Check the connection and try again.", {
      code: "network_error",
    });
  }
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (!response.ok) {
    const error = parsed && typeof parsed.error === "object" && parsed.error ? parsed.error : {};
    const message = typeof error.message === "string" ? error.message : `The gateway answered HTTP ${response.status}.`;
    throw new ApiError(message, {
      status: response.status,
      code: typeof error.code === "string" ? error.code : null,
      retryAfter: response.headers.get("Retry-After"),
    });
  }
  return { status: response.status, headers: response.headers, body: parsed };
}

/** The sentence an alert shows for an error: message, code, and when to retry. */
export function describeError(error) {
  if (!(error instanceof ApiError)) return `Unexpected error: ${error && error.message ? error.message : error}`;
  let text = error.message;
  if (error.code) text += ` (${error.code})`;
  if (error.retryAfter && (error.status === 429 || error.status === 409 || error.status === 503)) {
    text += ` Retry-After: ${error.retryAfter} s.`;
  }
  return text;
}

// Alerts are hidden while empty, so a page has only the alerts that say something.
export function showError(alert, error) {
  alert.textContent = describeError(error);
  alert.hidden = false;
}

export function clearAlert(alert) {
  alert.textContent = "";
  alert.hidden = true;
}

/** document.createElement with properties (textContent, className, ...) and children. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name.startsWith("aria-") || name === "role" || name.startsWith("data-")) node.setAttribute(name, value);
    else node[name] = value;
  }
  for (const child of children) node.append(child);
  return node;
}

export const $ = (id) => document.getElementById(id);

/** A Unix time in seconds as the reader's local date and time. */
export const localTime = (seconds) => new Date(seconds * 1000).toLocaleString();

/** Fills `container` with the quota lines of a usage body (GET /v1/usage or its admin twin). */
export function renderUsage(container, usage) {
  const lines = [];
  if (!usage.video_enabled) {
    lines.push("No video on this plan");
  } else {
    lines.push(`Hour: ${usage.used.hour} / ${usage.limits.hour} used`);
    lines.push(`Day: ${usage.used.day} / ${usage.limits.day} used`);
    const resets = [usage.resets_at.hour, usage.resets_at.day].filter((t) => typeof t === "number");
    // Each window frees its oldest slot at its resets_at; the earliest is the next one.
    lines.push(resets.length ? `Next slot frees at ${localTime(Math.min(...resets))}` : "No slot in use");
  }
  lines.push(...spendLines(usage.budget));
  container.replaceChildren(...lines.map((line) => el("p", { textContent: line })));
}

/** The money lines of a usage body's `budget` block: per UTC window, spent, reserved and what is left. */
function spendLines(budget) {
  if (!budget) return [];
  const money = (amount) => `${amount.toFixed(2)} ${budget.currency}`;
  return ["day", "month"].map((window) => {
    const totals = budget[window];
    const left = totals.limit === null ? "no budget" : `${money(totals.remaining)} left of ${money(totals.limit)}`;
    return `Spend, ${window} ${totals.start}: ${money(totals.spent)} spent, ${money(totals.reserved)} reserved; ${left}`;
  });
}

/**
 * Tabs per the ARIA practice: click or arrow keys select (Home/End too), roving tabindex, only
 * the selected panel shown. `onSelect(tab)` runs after each change.
 */
export function wireTabs(tablist, onSelect = () => {}) {
  const tabs = [...tablist.querySelectorAll('[role="tab"]')];
  const select = (tab, focus) => {
    for (const other of tabs) {
      const selected = other === tab;
      other.setAttribute("aria-selected", String(selected));
      other.tabIndex = selected ? 0 : -1;
      $(other.getAttribute("aria-controls")).hidden = !selected;
    }
    if (focus) tab.focus();
    onSelect(tab);
  };
  tablist.addEventListener("click", (event) => {
    const tab = event.target.closest('[role="tab"]');
    if (tab) select(tab, false);
  });
  tablist.addEventListener("keydown", (event) => {
    const index = tabs.indexOf(document.activeElement);
    if (index < 0) return;
    const moves = { ArrowRight: index + 1, ArrowDown: index + 1, ArrowLeft: index - 1, ArrowUp: index - 1 };
    let next = moves[event.key];
    if (event.key === "Home") next = 0;
    if (event.key === "End") next = tabs.length - 1;
    if (next === undefined) return;
    event.preventDefault();
    select(tabs[(next + tabs.length) % tabs.length], true);
  });
}
