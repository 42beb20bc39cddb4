// The "Current video" region: polling a job, its progress and time-left estimate, the player,
// and the download, remix and delete actions.

import { $, ApiError, call, clearAlert, el, localTime, showError } from "/api/console/api.js";

const FALLBACK_POLL_MS = 2000;
const ERROR_POLL_MS = 5000;

let current = null; // the Video object shown, or null
let pollTimer = null;
let generation = 0; // bumped whenever another video is shown, so stale polls drop their answers
const startedAt = new Map(); // video id -> ms when this page first saw it in_progress

let onChange = () => {}; // told when a job finishes or a video is created or deleted

const finished = (video) => video.status === "completed" || video.status === "failed";

/** How long to wait before the next poll: openai-poll-after-ms, else Retry-After, else 2 s. */
function pollDelay(headers) {
  const ms = Number(headers.get("openai-poll-after-ms"));
  if (Number.isFinite(ms) && ms > 0) return ms;
  const seconds = Number(headers.get("Retry-After"));
  if (Number.isFinite(seconds) && seconds > 0) return seconds * 1000;
  return FALLBACK_POLL_MS;
}

// The gateway's estimate when it has one (learned from jobs like this one); else
// elapsed since the job started (first seen in_progress, else created_at) * (100 - p) / p.
function timeLeft(video) {
  if (video.estimated_completion_at) {
    const left = Math.max(1, Math.round(video.estimated_completion_at - Date.now() / 1000));
    return `ready in about ${left} s (${localTime(video.estimated_completion_at)})`;
  }
  if (!(video.progress > 0)) return "estimating…";
  const start = startedAt.get(video.id) ?? video.created_at * 1000;
  const elapsed = Math.max(0, Date.now() - start) / 1000;
  const left = Math.max(1, Math.round((elapsed * (100 - video.progress)) / video.progress));
  return `about ${left} s left`;
}

function statusText(video, delayMs) {
  if (video.status === "failed") {
    const error = video.error || {};
    return `failed: ${error.code || "unknown"}: ${error.message || "The video could not be generated."}`;
  }
  if (video.status === "completed") return "completed";
  const parts = [video.status];
  if (video.status === "queued" && video.queue_position !== null && video.queue_position !== undefined) {
    parts.push(`queue position ${video.queue_position}`);
  }
  parts.push(`${video.progress}%`, timeLeft(video));
  if (delayMs) parts.push(`next check in ${Math.max(1, Math.round(delayMs / 1000))} s`);
  return parts.join(" · ");
}

function render(video, delayMs) {
  if (video.status === "in_progress" && !startedAt.has(video.id)) startedAt.set(video.id, Date.now());
  $("progress").value = video.progress ?? 0;
  $("job-status").textContent = statusText(video, delayMs);
  const details = [video.id, video.model, `${video.seconds} s`, video.size, `created ${localTime(video.created_at)}`];
  if (video.remixed_from_video_id) details.push(`remix of ${video.remixed_from_video_id}`);
  $("job-details").textContent = details.join(" · ");
  const player = $("player");
  if (video.status === "completed" && video.video_url) {
    // The SAS URL changes on every read: reload the player only for another video.
    if (player.dataset.videoId !== video.id) {
      player.dataset.videoId = video.id;
      if (video.thumbnail_url) player.poster = video.thumbnail_url;
      else player.removeAttribute("poster");
      player.preload = "auto";
      player.src = video.video_url;
      player.hidden = false;
    }
  } else {
    clearPlayer();
  }
  const completed = video.status === "completed";
  $("download").disabled = !completed;
  $("remix").disabled = !completed;
  $("delete").disabled = false;
}

function clearPlayer() {
  const player = $("player");
  player.hidden = true; // nothing to play: no empty black box
  if (!player.hasAttribute("src") && !player.hasAttribute("poster")) return;
  player.pause();
  player.removeAttribute("src");
  player.removeAttribute("poster");
  delete player.dataset.videoId;
  player.load(); // drops the old media
}

function stopPolling() {
  clearTimeout(pollTimer);
  pollTimer = null;
}

async function poll(id, mine) {
  try {
    const { headers, body } = await call(`/v1/videos/${encodeURIComponent(id)}`);
    if (mine !== generation) return;
    clearAlert($("video-error"));
    current = body;
    const done = finished(body);
    const delay = done ? 0 : pollDelay(headers);
    render(body, delay);
    if (done) onChange();
    else pollTimer = setTimeout(() => poll(id, mine), delay);
  } catch (error) {
    if (mine !== generation) return;
    showError($("video-error"), error);
    // A vanished video stops polling; anything else (network, 503) is tried again later.
    if (error.status !== 404) pollTimer = setTimeout(() => poll(id, mine), ERROR_POLL_MS);
  }
}

/** Shows `video` (a Video object) and polls it until it finishes; `firstDelayMs` before the first poll. */
export function showVideo(video, firstDelayMs) {
  stopPolling();
  const mine = ++generation;
  current = video;
  clearAlert($("video-error"));
  render(video, finished(video) ? 0 : firstDelayMs);
  if (!finished(video)) pollTimer = setTimeout(() => poll(video.id, mine), firstDelayMs || FALLBACK_POLL_MS);
}

/** Opens a video by id with a fresh read (fresh SAS URLs). */
export function openVideo(id) {
  stopPolling();
  poll(id, ++generation);
}

/** Forgets the current video; `statusWord` is what the status then reads. */
export function clearVideo(statusWord = "No video yet.") {
  stopPolling();
  generation++;
  current = null;
  $("progress").value = 0;
  $("job-status").textContent = statusWord;
  $("job-details").textContent = "";
  clearPlayer();
  for (const id of ["download", "remix", "delete"]) $(id).disabled = true;
}

/** Whole seconds of a 202's Retry-After as milliseconds, else the fallback. */
export const firstPoll = (headers) => pollDelay(headers);

async function download() {
  if (!current) return;
  const alert = $("video-error");
  clearAlert(alert);
  const id = current.id;
  let video;
  try {
    // A fresh read: the Video's SAS links expire (SAS_TTL_MINUTES) while a page stays open.
    ({ body: video } = await call(`/v1/videos/${encodeURIComponent(id)}`));
  } catch (error) {
    showError(alert, error);
    return;
  }
  if (!video.download_url) {
    showError(alert, new ApiError(`Video '${id}' has no file to download (status ${video.status}).`, { code: "video_not_ready" }));
    return;
  }
  // The page cannot fetch the blob (another origin, no CORS; connect-src 'self'), so it follows
  // download_url, whose signature makes Storage answer it as an attachment: the browser saves it
  // and the page stays where it is.
  const link = el("a", { href: video.download_url, download: `${id}.mp4`, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
}

async function remix() {
  if (!current) return;
  const alert = $("video-error");
  clearAlert(alert);
  const prompt = $("remix-prompt").value;
  if (!prompt.trim()) {
    alert.textContent = "Write a remix prompt first.";
    alert.hidden = false;
    $("remix-prompt").focus();
    return;
  }
  const button = $("remix");
  button.disabled = true;
  try {
    const { headers, body } = await call(`/v1/videos/${encodeURIComponent(current.id)}/remix`, {
      method: "POST",
      json: { prompt },
    });
    showVideo(body, firstPoll(headers));
    onChange();
  } catch (error) {
    showError(alert, error);
    button.disabled = false;
  }
}

async function remove() {
  if (!current) return;
  const id = current.id;
  if (!window.confirm(`Delete ${id}? A running job is cancelled; a finished one loses its files.`)) return;
  const alert = $("video-error");
  clearAlert(alert);
  // No poll may race the delete (it would meet a 404).
  stopPolling();
  generation++;
  try {
    await call(`/v1/videos/${encodeURIComponent(id)}`, { method: "DELETE" });
    clearVideo("deleted");
    onChange();
  } catch (error) {
    showError(alert, error);
    if (current && current.id === id) openVideo(id); // still there: keep it current and fresh
  }
}

export function initVideo(changed) {
  onChange = changed;
  $("download").addEventListener("click", download);
  $("remix").addEventListener("click", remix);
  $("delete").addEventListener("click", remove);
}
