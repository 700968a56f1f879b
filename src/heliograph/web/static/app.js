// Heliograph dashboard script: live mode on the Requests page.
// Data from the server is only ever put into the page with textContent and DOM APIs
// (never innerHTML), and links are only set when they are local paths.
"use strict";

(function () {
  const POLL_MS = 1500;
  const LOOKBACK_MS = 120000;
  const MAX_ROWS = 500;

  function localHref(value) {
    return typeof value === "string" && value.startsWith("/") && !value.startsWith("//");
  }

  function cell(text, href, className, title) {
    const td = document.createElement("td");
    if (className) td.className = className;
    if (title) td.title = title;
    if (href && localHref(href)) {
      const a = document.createElement("a");
      a.setAttribute("href", href);
      a.textContent = text;
      td.appendChild(a);
    } else {
      td.textContent = text;
    }
    return td;
  }

  function buildRow(r) {
    const tr = document.createElement("tr");
    tr.dataset.id = r.id;
    tr.dataset.created = r.created_at;
    tr.className = "fresh";
    tr.appendChild(cell(r.time, r.href, "nowrap"));
    const status = document.createElement("td");
    const badge = document.createElement("span");
    badge.className = "status " + (["ok", "warn", "err"].includes(r.status_class) ? r.status_class : "err");
    badge.title = r.state || "";
    badge.textContent = r.status;
    status.appendChild(badge);
    tr.appendChild(status);
    tr.appendChild(cell(r.provider));
    tr.appendChild(cell(r.model, r.model_href, "clip"));
    const user = cell(r.user, r.user_href, "clip");
    const userLink = user.querySelector("a");
    if (userLink && r.user_id) userLink.title = r.user_id;
    tr.appendChild(user);
    tr.appendChild(cell(r.session, r.session_href, "clip"));
    const preview = cell(r.preview, r.href, "preview");
    if (r.task && localHref(r.task_href)) {
      const badge = document.createElement("a");
      badge.className = "badge task";
      badge.title = "Open WebUI background task";
      badge.setAttribute("href", r.task_href);
      badge.textContent = r.task;
      preview.insertBefore(document.createTextNode(" "), preview.firstChild);
      preview.insertBefore(badge, preview.firstChild);
    }
    tr.appendChild(preview);
    tr.appendChild(cell(r.tokens, null, "num", r.tokens_title));
    const cost = cell(r.cost, null, "num", r.cost_title);
    if (r.cost_title) cost.classList.add("unknown");
    tr.appendChild(cost);
    tr.appendChild(cell(r.latency, null, "num"));
    tr.appendChild(cell(r.ttft, null, "num"));
    return tr;
  }

  function startLive(toggle) {
    const body = document.getElementById("request-rows");
    const table = document.getElementById("requests-table");
    if (!body || !table) return;
    const seen = new Set();
    let newest = Number(toggle.dataset.now) || Date.now();
    for (const tr of body.querySelectorAll("tr[data-id]")) {
      seen.add(tr.dataset.id);
      newest = Math.max(newest, Date.parse(tr.dataset.created) || 0);
    }
    let timer = null;
    let busy = false;

    function insert(r) {
      const created = Date.parse(r.created_at) || 0;
      const tr = buildRow(r);
      let before = null;
      for (const row of body.children) {
        if ((Date.parse(row.dataset.created) || 0) <= created) { before = row; break; }
      }
      body.insertBefore(tr, before);
      seen.add(r.id);
      newest = Math.max(newest, created);
      while (body.children.length > MAX_ROWS) body.removeChild(body.lastElementChild);
      table.hidden = false;
      for (const empty of document.querySelectorAll(".empty")) empty.hidden = true;
    }

    async function poll() {
      if (busy) return;
      busy = true;
      try {
        const url = new URL(toggle.dataset.feed, window.location.href);
        url.searchParams.set("after", String(Math.floor(newest - LOOKBACK_MS)));
        const resp = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (!resp.ok) { stop(); return; }
        const data = await resp.json();
        const rows = Array.isArray(data.rows) ? data.rows : [];
        for (const r of rows.slice().reverse()) {
          if (r && typeof r.id === "string" && !seen.has(r.id)) insert(r);
        }
      } catch (err) {
        // network hiccup: try again on the next tick
      } finally {
        busy = false;
      }
    }

    function stop() {
      if (timer) clearInterval(timer);
      timer = null;
      toggle.checked = false;
      setLiveParam(false);
    }

    function start() {
      setLiveParam(true);
      poll();
      timer = setInterval(poll, POLL_MS);
    }

    toggle.addEventListener("change", function () {
      if (toggle.checked) start(); else stop();
    });
    if (toggle.checked && !toggle.disabled) start();
  }

  function setLiveParam(on) {
    const url = new URL(window.location.href);
    if (on) url.searchParams.set("live", "1"); else url.searchParams.delete("live");
    window.history.replaceState(null, "", url);
  }

  document.addEventListener("DOMContentLoaded", function () {
    const toggle = document.getElementById("live-toggle");
    if (toggle) startLive(toggle);
  });
})();
