// The console's entry module (loaded from the gateway itself: the CSP allows no inline script).
// It wires the two top-level tabs and the panels, then tells the browser tests it is ready.

import { $, wireTabs } from "/api/console/api.js";
import { initOperators } from "/api/console/operators.js";
import { initPlayground } from "/api/console/playground.js";

wireTabs($("sections"));
initPlayground();
initOperators();

// Browser tests wait for this flag before they look at the page.
document.documentElement.dataset.ready = "true";
