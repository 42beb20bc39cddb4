// The Operators panel: admin sign-in, creating apps, the apps table and one app's details
// (plan, key rotation, usage). Health and failures are in failures.js.

import { $, call, clearAlert, el, localTime, renderUsage, showError } from "/api/console/api.js";
import { refreshFailures } from "/api/console/failures.js";
import { wireSession } from "/api/console/session.js";

const PAGE = 10;
let appCursors = [null]; // the `after` of each page seen; the last is the page shown
let selected = null; // the app shown in App details

// ---- sign-in ----

function signedOut() {
  $("secrets-slot").replaceChildren();
  $("apps").tBodies[0].replaceChildren();
  appCursors = [null];
  closeDetails();
}

// ---- secrets shown once ----

/** A readonly input with its label and a Copy button; the value is a secret shown this once. */
function secretField(id, label, value, copyLabel) {
  const input = el("input", { type: "text", id, value, readOnly: true, spellcheck: false, autocomplete: "off" });
  const note = el("span", { className: "hint", "aria-live": "polite" });
  const copy = el("button", { type: "button", textContent: copyLabel });
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(input.value);
      note.textContent = "Copied.";
    } catch {
      input.select(); // the reader can still copy by hand
      note.textContent = "Copy failed: the text is selected, copy it by hand.";
    }
  });
  return el("div", { className: "field" }, el("label", { htmlFor: id, textContent: label }), el("div", { className: "row" }, input, copy), note);
}

function showSecrets(app) {
  const done = el("button", { type: "button", textContent: "Done" });
  const region = el(
    "section",
    { className: "card secrets", "aria-label": "New app secrets" },
    el("h2", { textContent: `Secrets of ${app.name}` }),
    el("p", { className: "warning", textContent: "These are shown once. Copy them now: the gateway keeps only a hash of the key." }),
    secretField("new-app-key", "API key", app.api_key, "Copy API key"),
    secretField("new-app-webhook-secret", "Webhook secret", app.webhook_secret, "Copy webhook secret"),
    done,
  );
  done.addEventListener("click", () => {
    region.remove(); // the secrets leave the DOM, not just the view
    $("app-name").focus();
  });
  $("secrets-slot").replaceChildren(region);
  region.querySelector("input").focus();
}

async function createApp(event) {
  event.preventDefault();
  const alert = $("create-app-error");
  clearAlert(alert);
  const button = event.submitter || $("create-app").querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const { body } = await call("/v1/manage/apps", {
      auth: "admin",
      method: "POST",
      json: { name: $("app-name").value, plan: $("app-plan").value },
    });
    $("app-name").value = "";
    showSecrets(body);
    appCursors = [null];
    refreshApps();
  } catch (error) {
    showError(alert, error);
  } finally {
    button.disabled = false;
  }
}

// ---- the apps table ----

function appRow(app) {
  // Shows "Manage" (the row already shows the name); its accessible name says which app.
  const manage = el("button", { type: "button", textContent: "Manage" });
  manage.setAttribute("aria-label", `Manage ${app.name}`);
  manage.addEventListener("click", () => openDetails(app));
  const cell = (text, className = "") => el("td", { textContent: text, className });
  return el("tr", {}, cell(app.name, "name"), cell(app.id, "id"), cell(app.plan), cell(localTime(app.created_at)), el("td", {}, manage));
}

function showApps(body) {
  $("apps").tBodies[0].replaceChildren(...body.data.map(appRow));
  if (!body.data.length) {
    $("apps").tBodies[0].append(el("tr", {}, el("td", { colSpan: 5, textContent: "No apps on this page." })));
  }
  $("apps-prev").disabled = appCursors.length < 2;
  $("apps-next").disabled = !(body.has_more && body.last_id);
  $("apps-next").dataset.after = body.last_id || "";
}

async function refreshApps() {
  const alert = $("apps-error");
  const after = appCursors[appCursors.length - 1];
  const query = new URLSearchParams({ limit: String(PAGE) });
  if (after) query.set("after", after);
  try {
    const { body } = await call(`/v1/manage/apps?${query}`, { auth: "admin" });
    clearAlert(alert);
    showApps(body);
  } catch (error) {
    showError(alert, error);
  }
}

// ---- App details ----

function setStatus(text) {
  $("details-status").textContent = text;
  $("details-status").hidden = !text;
}

function openDetails(app) {
  selected = app;
  $("details").hidden = false;
  $("details-name").textContent = app.name;
  $("details-info").textContent = `ID ${app.id} · plan ${app.plan} · created ${localTime(app.created_at)}`;
  $("new-plan").value = app.plan;
  setStatus("");
  $("rotated-slot").replaceChildren();
  clearAlert($("details-error"));
  $("details-usage").replaceChildren();
  $("details").scrollIntoView({ block: "nearest" });
  $("details-name").tabIndex = -1;
  $("details-name").focus();
  refreshUsage();
}

function closeDetails() {
  selected = null;
  $("details").hidden = true;
  $("rotated-slot").replaceChildren();
  setStatus("");
}

async function refreshUsage() {
  if (!selected) return;
  const app = selected;
  try {
    const { body } = await call(`/v1/manage/apps/${encodeURIComponent(app.id)}/usage`, { auth: "admin" });
    if (app === selected) renderUsage($("details-usage"), body);
  } catch (error) {
    if (app === selected) showError($("details-error"), error);
  }
}

async function changePlan() {
  if (!selected) return;
  clearAlert($("details-error"));
  setStatus("");
  const plan = $("new-plan").value;
  try {
    const { body } = await call(`/v1/manage/apps/${encodeURIComponent(selected.id)}`, {
      auth: "admin",
      method: "PATCH",
      json: { plan },
    });
    selected = body;
    $("details-info").textContent = `ID ${body.id} · plan ${body.plan} · created ${localTime(body.created_at)}`;
    setStatus(`Plan changed to ${body.plan}`);
    refreshApps();
    refreshUsage();
  } catch (error) {
    showError($("details-error"), error);
  }
}

async function rotateKey() {
  if (!selected) return;
  const app = selected;
  if (!window.confirm(`Rotate the key of ${app.name}? The old key stops working at once.`)) return;
  clearAlert($("details-error"));
  setStatus("");
  try {
    const { body } = await call(`/v1/manage/apps/${encodeURIComponent(app.id)}/keys`, { auth: "admin", method: "POST" });
    if (app !== selected) return;
    $("rotated-slot").replaceChildren(
      el("p", { className: "warning", textContent: "The old key no longer works. The new key is shown once: copy it now." }),
      secretField("rotated-key", "New API key", body.api_key, "Copy new API key"),
    );
  } catch (error) {
    showError($("details-error"), error);
  }
}

export function initOperators() {
  $("create-app").addEventListener("submit", createApp);
  $("apps-prev").addEventListener("click", () => {
    if (appCursors.length > 1) appCursors.pop();
    refreshApps();
  });
  $("apps-next").addEventListener("click", () => {
    if (!$("apps-next").dataset.after) return;
    appCursors.push($("apps-next").dataset.after);
    refreshApps();
  });
  $("apps-refresh").addEventListener("click", refreshApps);
  $("change-plan").addEventListener("click", changePlan);
  $("rotate-key").addEventListener("click", rotateKey);
  $("failures-refresh").addEventListener("click", refreshFailures);
  // Last, so a kept key signs in again only once everything else is wired.
  wireSession({
    prefix: "admin",
    role: "admin",
    content: "operators",
    // The first page of apps checks the key and is what the panel shows first.
    check: async (key) => (await call(`/v1/manage/apps?limit=${PAGE}`, { auth: "admin", key })).body,
    signedIn: (body) => {
      appCursors = [null];
      showApps(body);
      refreshFailures();
    },
    signedOut,
  });
}
