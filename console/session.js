// One panel's sign-in: the Playground (app key) and Operators (admin key) differ only in their
// element ids, how a key is checked and what shows once signed in, so both use this.

import { $, clearAlert, keys, mask, showError } from "/api/console/api.js";

/**
 * Wires the `${prefix}-signin` form (`${prefix}-key` field, `${prefix}-signin-error` alert) and
 * the `${prefix}-session` line (`${prefix}-signed-in`, `${prefix}-signout`), and signs in again
 * with a key this tab kept. A key is kept only once `check(key)` (an API call with it) succeeded.
 */
export function wireSession({ prefix, role, content, check, signedIn, signedOut }) {
  const alert = $(`${prefix}-signin-error`);

  function show(key) {
    const on = key !== null;
    $(`${prefix}-signin`).hidden = on;
    $(`${prefix}-session`).hidden = !on;
    $(`${prefix}-signed-in`).textContent = on ? `Signed in with ${mask(key)}` : "";
    $(content).hidden = !on;
  }

  async function signIn(key) {
    clearAlert(alert);
    try {
      const body = await check(key);
      keys.set(role, key);
      $(`${prefix}-key`).value = "";
      show(key);
      signedIn(body);
    } catch (error) {
      keys.clear(role);
      show(null);
      signedOut();
      showError(alert, error);
    }
  }

  $(`${prefix}-signin`).addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $(`${prefix}-key`).value.trim();
    if (key) signIn(key);
  });
  $(`${prefix}-signout`).addEventListener("click", () => {
    keys.clear(role);
    clearAlert(alert);
    show(null);
    signedOut();
    $(`${prefix}-key`).focus();
  });
  const saved = keys.get(role);
  if (saved) signIn(saved);
}
