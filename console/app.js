// The console's entry module (loaded from the gateway itself: the CSP allows no inline script).
// It wires the two top-level tabs and the panels, then tells the browser tests it is ready.

import { $, wireTabs } from "/api/console/api.js";
import { initOperators } from "/api/console/operators.js";
import { initPlayground } from "/api/console/playground.js";

wireTabs($("sections"));
initPlayground();
initOperators();

// The sign-in buttons ship disabled, so that without this script a key is never submitted as a
// plain form (which would put it in a request); the forms are wired now.
for (const button of document.querySelectorAll("[data-needs-script]")) button.disabled = false;

// Browser tests wait for this flag before they look at the page.
document.documentElement.dataset.ready = "true";
