// Heliograph dashboard script: live mode on the Requests page, and the replay form's key
// binding on the request page.
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

  function badge(text, className, title, href) {
    const el = document.createElement(href && localHref(href) ? "a" : "span");
    el.className = className;
    if (title) el.title = title;
    if (el.tagName === "A") el.setAttribute("href", href);
    el.textContent = text;
    return el;
  }

  // One builder per column the table can show (web/columns.py); the table's header says
  // which columns it has, in which order.
  const CELLS = {
    time: (r) => cell(r.time, r.href, "nowrap"),
    status: (r) => {
      const td = document.createElement("td");
      const cls = ["ok", "warn", "err"].includes(r.status_class) ? r.status_class : "err";
      td.appendChild(badge(r.status, "status " + cls, r.status_title || r.state || ""));
      return td;
    },
    provider: (r) => cell(r.provider),
    where: (r) => {
      const td = document.createElement("td");
      if (r.where === "local" || r.where === "cloud") td.appendChild(badge(r.where, "badge " + r.where));
      return td;
    },
    model: (r) => cell(r.model, r.model_href, "clip"),
    user: (r) => {
      const td = cell(r.user, r.user_href, "clip");
      const link = td.querySelector("a");
      if (link && r.user_id) link.title = r.user_id;
      return td;
    },
    session: (r) => cell(r.session, r.session_href, "clip"),
    prompt: (r) => {
      const td = cell(r.preview, r.href, "preview");
      if (r.task && localHref(r.task_href)) {
        td.insertBefore(document.createTextNode(" "), td.firstChild);
        td.insertBefore(badge(r.task, "badge task", "Open WebUI background task", r.task_href), td.firstChild);
      }
      return td;
    },
    tokens: (r) => cell(r.tokens, null, "num", r.tokens_title),
    cost: (r) => {
      const td = cell(r.cost, null, "num", r.cost_title);
      if (r.cost_title) td.classList.add("unknown");
      return td;
    },
    latency: (r) => {
      const td = cell(r.latency, null, "num");
      if (r.cold) {
        td.insertBefore(document.createTextNode(" "), td.firstChild);
        td.insertBefore(badge("cold", "badge cold", "Cold start: the model was loaded for this request"), td.firstChild);
      }
      return td;
    },
    ttft: (r) => cell(r.ttft, null, "num"),
    tps: (r) => cell(r.tps, null, "num"),
    prompt_name: (r) => cell(r.prompt_name, r.prompt_href, "clip"),
    prompt_version: (r) => cell(r.prompt_version, r.prompt_version_href),
    stream: (r) => cell(r.stream),
    error: (r) => cell(r.error, null, "clip error-cell", r.error),
  };

  function columnKeys(table) {
    return Array.from(table.querySelectorAll("thead th[data-col]"), (th) => th.dataset.col);
  }

  function buildRow(r, keys) {
    const tr = document.createElement("tr");
    tr.dataset.id = r.id;
    tr.dataset.created = r.created_at;
    for (const key of keys) {
      const build = CELLS[key];
      tr.appendChild(build ? build(r) : document.createElement("td"));
    }
    return tr;
  }

  // Live mode. Only rows that reached the store after live was switched on are marked
  // (class "fresh"): the first poll after switching on is the baseline (what the store
  // already held; for a page opened with live on, the rows it was made with), and its rows
  // are added unmarked; later rows are marked until live is switched on again. Rows older than the bottom of a full page belong to later pages and
  // are never added.
  function startLive(toggle) {
    const body = document.getElementById("request-rows");
    const table = document.getElementById("requests-table");
    if (!body || !table) return;
    const keys = columnKeys(table);
    const shown = new Set();
    let newest = Number(toggle.dataset.now) || Date.now();
    let floor = -Infinity;
    for (const tr of body.querySelectorAll("tr[data-id]")) {
      shown.add(tr.dataset.id);
      const created = Date.parse(tr.dataset.created) || 0;
      newest = Math.max(newest, created);
      if (table.dataset.more === "1") floor = Math.min(floor === -Infinity ? created : floor, created);
    }
    let timer = null;
    let busy = false;
    let baseline = null; // ids the store held when live was switched on
    let session = 0;

    function insert(r, fresh) {
      const created = Date.parse(r.created_at) || 0;
      const tr = buildRow(r, keys);
      if (fresh) {
        tr.classList.add("fresh");
        tr.title = "Arrived after live mode was switched on";
      }
      let before = null;
      for (const row of body.children) {
        if ((Date.parse(row.dataset.created) || 0) <= created) { before = row; break; }
      }
      body.insertBefore(tr, before);
      shown.add(r.id);
      newest = Math.max(newest, created);
      while (body.children.length > MAX_ROWS) body.removeChild(body.lastElementChild);
      table.hidden = false;
      for (const empty of document.querySelectorAll(".empty")) empty.hidden = true;
    }

    async function poll() {
      if (busy) return;
      busy = true;
      const mine = session;
      try {
        const url = new URL(toggle.dataset.feed, window.location.href);
        url.searchParams.set("after", String(Math.floor(newest - LOOKBACK_MS)));
        const resp = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (mine !== session || !timer) return;
        if (!resp.ok) { stop(); return; }
        const data = await resp.json();
        if (mine !== session || !timer) return;
        const rows = (Array.isArray(data.rows) ? data.rows : []).filter((r) => r && typeof r.id === "string");
        const first = baseline === null;
        if (first) baseline = new Set(rows.map((r) => r.id));
        if (!table.dataset.live) table.dataset.live = "ready";
        for (const r of rows.slice().reverse()) {
          if (shown.has(r.id)) continue;
          if ((Date.parse(r.created_at) || 0) < floor) continue;
          insert(r, !first && !baseline.has(r.id));
        }
      } catch (err) {
        // network hiccup: try again on the next tick
      } finally {
        busy = false;
      }
    }

    function stop() {
      session += 1;
      if (timer) clearInterval(timer);
      timer = null;
      baseline = null;
      delete table.dataset.live;
      toggle.checked = false;
      setLiveParam(false);
    }

    function start() {
      session += 1;
      baseline = null;
      for (const tr of body.querySelectorAll("tr.fresh")) {
        tr.classList.remove("fresh");
        tr.removeAttribute("title");
      }
      setLiveParam(true);
      timer = setInterval(poll, POLL_MS);
      busy = false;
      poll();
    }

    toggle.addEventListener("change", function () {
      if (toggle.checked) start(); else stop();
    });
    if (toggle.checked && !toggle.disabled) {
      // Opened with live on: it was on from the moment the page was made, so the rows the
      // page already shows are the baseline and everything stored since is new.
      start();
      baseline = new Set(shown);
    }
  }

  function setLiveParam(on) {
    const url = new URL(window.location.href);
    if (on) url.searchParams.set("live", "1"); else url.searchParams.delete("live");
    window.history.replaceState(null, "", url);
  }

  // The replay form's provider key belongs to the upstream it was typed for: choosing
  // another upstream clears it, and key_for tells the server which upstream that is. The
  // model field suggests the models the chosen upstream served lately; while it still holds
  // the original model and the new upstream never served that one, it takes the upstream's
  // most used model (and the original back on the original upstream).
  function bindReplayForm(form) {
    const target = form.querySelector("select[name=target]");
    const key = form.querySelector("input[name=provider_key]");
    const keyFor = form.querySelector("input[name=key_for]");
    const model = form.querySelector("input[name=model]");
    const label = document.getElementById("replay-key-upstream");
    if (!target || !key || !keyFor) return;
    let suggested = "";
    target.addEventListener("change", function () {
      if (keyFor.value !== target.value) key.value = "";
      keyFor.value = target.value;
      if (label) label.textContent = target.value;
      if (!model) return;
      const original = model.dataset.original || "";
      model.setAttribute("list", "replay-models-" + target.value);
      const list = document.getElementById("replay-models-" + target.value);
      const names = list ? Array.from(list.options, (o) => o.value) : [];
      const untouched = model.value === original || (suggested && model.value === suggested);
      if (!untouched) return;
      if (target.value === model.dataset.upstream || names.includes(original) || !names.length) {
        model.value = original;
        suggested = "";
      } else {
        model.value = suggested = names[0];
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    const toggle = document.getElementById("live-toggle");
    if (toggle) startLive(toggle);
    const replay = document.getElementById("replay-form");
    if (replay) bindReplayForm(replay);
  });
})();
