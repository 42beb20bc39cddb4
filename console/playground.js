// The Playground panel: app sign-in, the New video form, History and Quota.
// The Current video region lives in video.js, the Code region in code.js.

import { $, call, clearAlert, el, renderUsage, showError } from "/api/console/api.js";
import { initCode, showCode } from "/api/console/code.js";
import { optionValues, showOptions, wireOptions } from "/api/console/options.js";
import { wireSession } from "/api/console/session.js";
import { clearVideo, firstPoll, initVideo, openVideo, showVideo } from "/api/console/video.js";

const PAGE = 10;
let models = [];
let historyCursors = [null]; // the `after` of each page seen; the last is the page shown
let historyHasMore = false;

// ---- sign-in ----

function signedOut() {
  clearVideo();
  historyCursors = [null];
  $("history").replaceChildren();
  $("quota").replaceChildren();
}

// ---- the New video form ----

const option = (value, text) => el("option", { value, textContent: text });

function setModels(list) {
  models = Array.isArray(list) ? list : [];
  $("model").replaceChildren(...models.map((model) => option(model.id, model.id)));
  modelChanged();
}

function modelChanged() {
  const model = models.find((m) => m.id === $("model").value);
  if (!model) return;
  $("seconds").replaceChildren(...model.seconds.map((s) => option(s, `${s} seconds`)));
  $("size").replaceChildren(...model.sizes.map((s) => option(s, s)));
  showOptions(model);
  const image = $("image");
  image.disabled = !model.image_input;
  $("dropzone").classList.toggle("disabled", !model.image_input);
  $("dropzone").setAttribute("aria-disabled", String(!model.image_input));
  if (!model.image_input) {
    image.value = "";
    $("image-note").textContent = `${model.id} does not take an image.`;
  }
  imageChanged();
}

function imageChanged() {
  const file = $("image").files[0];
  const model = models.find((m) => m.id === $("model").value);
  $("image-clear").hidden = !file;
  if (file) $("image-note").textContent = `Image: ${file.name} (${Math.ceil(file.size / 1024)} KiB)`;
  else if (!model || model.image_input) $("image-note").textContent = "No image: the video starts from the prompt alone.";
  updateCode();
}

function formFields() {
  return { model: $("model").value, prompt: $("prompt").value, seconds: $("seconds").value, size: $("size").value };
}

function updateCode() {
  const file = $("image").disabled ? null : $("image").files[0];
  showCode({ fields: formFields(), options: optionValues(), image: file ? file.name : null });
}

async function generate(event) {
  event.preventDefault();
  const alert = $("create-error");
  clearAlert(alert);
  const fields = formFields();
  if (!fields.prompt.trim()) {
    alert.textContent = "Write a prompt first.";
    alert.hidden = false;
    $("prompt").focus();
    return;
  }
  const file = $("image").disabled ? null : $("image").files[0];
  // Options are top-level fields too (a flag becomes the text "true"/"false" in a form).
  const sent = { ...fields, ...optionValues() };
  let request = { json: sent };
  if (file) {
    // An image goes as multipart, as the SDK sends it; otherwise JSON.
    const form = new FormData();
    for (const [name, value] of Object.entries(sent)) form.append(name, value);
    form.append("input_reference", file, file.name);
    request = { form };
  }
  const button = $("generate");
  button.disabled = true;
  try {
    const { headers, body } = await call("/v1/videos", { method: "POST", ...request });
    showVideo(body, firstPoll(headers));
    videosChanged();
  } catch (error) {
    showError(alert, error);
  } finally {
    button.disabled = false;
  }
}

function wireDropzone() {
  const zone = $("dropzone");
  zone.addEventListener("dragover", (event) => {
    if ($("image").disabled) return;
    event.preventDefault(); // allows the drop
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    if ($("image").disabled || !event.dataTransfer.files.length) return;
    const files = new DataTransfer();
    files.items.add(event.dataTransfer.files[0]);
    $("image").files = files.files;
    imageChanged();
  });
}

// ---- History ----

function historyEntry(video) {
  const label = `${video.id} · ${video.status} · ${video.prompt}`;
  const button = el("button", { type: "button", className: "entry", title: label });
  button.append(el("span", { className: "id", textContent: video.id }), " · ");
  button.append(el("span", { className: `badge ${video.status}`, textContent: video.status }), " · ");
  button.append(el("span", { className: "prompt", textContent: video.prompt }));
  button.addEventListener("click", () => {
    openVideo(video.id);
    $("current").scrollIntoView({ block: "nearest" });
  });
  return el("li", {}, button);
}

async function refreshHistory() {
  const alert = $("history-error");
  const after = historyCursors[historyCursors.length - 1];
  const query = new URLSearchParams({ limit: String(PAGE), order: "desc" });
  if (after) query.set("after", after);
  try {
    const { body } = await call(`/v1/videos?${query}`);
    clearAlert(alert);
    $("history").replaceChildren(...body.data.map(historyEntry));
    $("history-empty").hidden = body.data.length > 0;
    historyHasMore = Boolean(body.has_more && body.last_id);
    $("older").dataset.after = body.last_id || "";
  } catch (error) {
    showError(alert, error);
  }
  $("newer").disabled = historyCursors.length < 2;
  $("older").disabled = !historyHasMore;
}

async function refreshQuota() {
  const alert = $("quota-error");
  try {
    const { body } = await call("/v1/usage");
    clearAlert(alert);
    renderUsage($("quota"), body);
  } catch (error) {
    showError(alert, error);
  }
}

// After a create, remix, delete or a job's end, the lists and quota are stale.
function videosChanged() {
  refreshHistory();
  refreshQuota();
}

export function initPlayground() {
  initCode();
  initVideo(videosChanged);
  $("model").addEventListener("change", modelChanged);
  for (const id of ["prompt", "seconds", "size"]) $(id).addEventListener("input", updateCode);
  wireOptions(updateCode);
  $("image").addEventListener("change", imageChanged);
  $("image-clear").addEventListener("click", () => {
    $("image").value = "";
    imageChanged();
    $("image").focus();
  });
  wireDropzone();
  $("new-video").addEventListener("submit", generate);
  $("newer").addEventListener("click", () => {
    if (historyCursors.length > 1) historyCursors.pop();
    refreshHistory();
  });
  $("older").addEventListener("click", () => {
    if (!$("older").dataset.after) return;
    historyCursors.push($("older").dataset.after);
    refreshHistory();
  });
  $("history-refresh").addEventListener("click", refreshHistory);
  updateCode();
  // Last, so a kept key signs in again only once everything else is wired.
  wireSession({
    prefix: "app",
    role: "app",
    content: "playground",
    // The models check the key and are what the form needs first.
    check: async (key) => (await call("/v1/models", { key })).body,
    signedIn: (body) => {
      setModels(body.data);
      refreshHistory();
      refreshQuota();
    },
    signedOut,
  });
}
