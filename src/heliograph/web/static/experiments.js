// Heliograph experiment page: while the experiment runs, polls its progress (our own JSON
// endpoint) and updates the bar and the counts; when it finishes, reloads the page so the
// summary and the matrix show the final figures. Text goes in with textContent only.
"use strict";

(function () {
  const box = document.getElementById("progress");
  if (!box || box.dataset.running !== "true") return;
  const bar = document.getElementById("progress-bar");
  const status = document.getElementById("progress-status");
  const text = document.getElementById("progress-text");
  const POLL_MS = 2000;

  function usd(nusd) {
    return "$" + (nusd / 1e9).toFixed(nusd < 1e7 ? 6 : 4);
  }

  async function poll() {
    try {
      const resp = await fetch(box.dataset.url, { credentials: "same-origin" });
      if (!resp.ok) return;
      const p = await resp.json();
      if (bar) bar.value = p.percent;
      if (status) status.textContent = p.status;
      if (text) {
        text.textContent = p.done + " done, " + p.failed + " failed of " + p.total +
          " cells · spent " + usd(p.spent_nusd);
      }
      if (!p.running) {
        window.location.reload();
        return;
      }
    } catch (err) {
      // the server may be restarting: try again on the next tick
    }
    window.setTimeout(poll, POLL_MS);
  }
  window.setTimeout(poll, POLL_MS);
})();
