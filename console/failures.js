// Operators' health view: storage health (GET /api/health) and the recent failed jobs
// (GET /api/v1/manage/failures), with their counts per provider and per code.

import { $, call, clearAlert, describeError, el, localTime, showError } from "/api/console/api.js";

/** `{name: count}` as list items "name → N failures", most first; `empty` when there are none. */
function countItems(counts, empty) {
  const entries = Object.entries(counts || {}).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  if (!entries.length) return [el("li", { textContent: empty })];
  return entries.map(([name, count]) => el("li", { textContent: `${name} → ${count} ${count === 1 ? "failure" : "failures"}` }));
}

function failureRow(failure) {
  const error = failure.error || {};
  const when = failure.completed_at ?? failure.created_at;
  const cell = (text, className = "") => el("td", { textContent: text ?? "", className });
  return el(
    "tr",
    {},
    cell(typeof when === "number" ? localTime(when) : ""),
    cell(failure.app_id, "id"),
    cell(failure.id, "id"),
    cell(failure.model),
    cell(failure.provider),
    cell(error.code),
    cell(error.message, "message"),
  );
}

async function refreshHealth() {
  const line = $("storage-health");
  try {
    const { body } = await call("/health", { auth: null });
    const latency = Number(body.storage_latency_ms);
    line.textContent = `Storage: ${body.storage} (${Number.isFinite(latency) ? Math.round(latency) : "?"} ms)`;
  } catch (error) {
    line.textContent = `Storage: ${describeError(error)}`;
  }
}

export async function refreshFailures() {
  refreshHealth();
  const alert = $("failures-error");
  const body = $("failures").tBodies[0];
  try {
    const { body: list } = await call("/v1/manage/failures?limit=50", { auth: "admin" });
    clearAlert(alert);
    const counts = list.counts || {};
    const since = typeof list.since === "number" ? ` since ${localTime(list.since)}` : "";
    $("provider-health").replaceChildren(...countItems(counts.by_provider, `no failures${since}`));
    $("code-counts").replaceChildren(...countItems(counts.by_code, `no failures${since}`));
    body.replaceChildren(...(list.data || []).map(failureRow));
    if (!body.rows.length) body.append(el("tr", {}, el("td", { colSpan: 7, textContent: `No failures${since}.` })));
  } catch (error) {
    showError(alert, error);
  }
}
