// The console's script (an ES module, loaded from the gateway itself; no inline script).
// Browser tests wait for this flag before they look at the page.
document.documentElement.dataset.ready = "true";
